"""How much of a race or a crash-point sweep a run covers: what fits the suite's budget on a
shared machine, or all of it under `make soak` (SOAK=1). A sample is drawn at random each
run, its seed printed, so that over many runs every point is covered and a failure reruns."""

import os
import random

SOAK = os.environ.get("SOAK") == "1"


def rounds(*, full: int, suite: int) -> int:
    """The rounds of a race: ``full`` under soak, else ``suite``."""
    return full if SOAK else suite


def kill_points(count: int, *, suite: int) -> list[int]:
    """The kill points (1-based) to run of ``count``: all under soak, else ``suite`` of them
    drawn at random (CRASH_POINTS_SEED repeats a draw), the first and last always among them."""
    everything = list(range(1, count + 1))
    if SOAK or count <= suite:
        return everything
    seed = int(os.environ.get("CRASH_POINTS_SEED") or random.randrange(2**32))
    print(f"kill points drawn with CRASH_POINTS_SEED={seed}")  # noqa: T201
    drawn = random.Random(seed).sample(everything[1:-1], suite - 2)
    return sorted([1, *drawn, count])
