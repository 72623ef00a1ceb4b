"""Waiting on what a worker or the live server does, on a shared, loaded machine."""

import time
from collections.abc import Callable
from pathlib import Path


def wait_for(condition: Callable[[], bool], log: Path | None = None, timeout: float = 30) -> None:
    """Poll with a generous deadline: the machine is shared and loaded."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, log.read_text(errors="replace")[-6000:] if log else "timed out"
        time.sleep(0.1)
