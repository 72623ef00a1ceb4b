"""What the benchmarks share about the processes they start: the orders workers (as many
as the formation runs) and the scheduler worker as the Procfile runs them, and the CPU
time a process and its children have used."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from algotrader.processes import procfile_command, procfile_instances

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def orders_worker_commands(
    *, hostname: str, extra: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> dict[str, list[str]]:
    """The Procfile's ``worker`` line once for each orders worker the formation runs
    (pool, concurrency, log level, count: production's), by node name: the benchmark's
    ``name@host`` becomes ``name-worker.1@host``, ``name-worker.2@host``... Each loads
    ``bench.hooks`` to record task starts."""
    name, _, host = hostname.partition("@")
    commands = {}
    for instance, command in procfile_instances("worker", env):
        node = f"{name}-{instance}@{host}"
        command[command.index("-n") + 1] = node
        commands[node] = [*command, "--include", "bench.hooks", *extra]
    return commands


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
