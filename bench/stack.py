"""What the benchmarks share about the processes they start: the orders and scheduler
workers as the Procfile runs them, and the CPU time a process and its children have used."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from algotrader.processes import procfile_command

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def orders_worker_command(
    *, hostname: str, extra: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> list[str]:
    """The Procfile's ``worker`` line (pool, concurrency, log level: production's), under
    the benchmark's own node name, with ``bench.hooks`` loaded to record task starts."""
    command = procfile_command("worker", env)
    command[command.index("-n") + 1] = hostname
    return [*command, "--include", "bench.hooks", *extra]


def scheduler_worker_command(*, hostname: str, env: Mapping[str, str] | None = None) -> list[str]:
    """The Procfile's ``scheduler`` line (the slot fan-outs' worker) under the benchmark's node name."""
    command = procfile_command("scheduler", env)
    command[command.index("-n") + 1] = hostname
    return command


def process_tree_cpu_seconds(pid: int) -> tuple[float, float]:
    """User + system CPU seconds of ``pid``, and of its live descendants (a worker's pool)."""
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        child, parent = int(entry.name), int(fields[1])
        children.setdefault(parent, []).append(child)
        times[child] = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    descendants, todo = 0.0, list(children.get(pid, []))
    while todo:
        current = todo.pop()
        descendants += times.get(current, 0.0)
        todo.extend(children.get(current, []))
    return times.get(pid, 0.0), descendants
