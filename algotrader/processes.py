"""Starting and stopping a group of real processes: one helper for `make run`, the end-to-end and
live tests, and the benchmarks. Each process gets its own session, so its children stop with it."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, TypeVar

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's pick on loopback)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def manage(*args: str) -> list[str]:
    """``python manage.py ...`` with this interpreter."""
    return [sys.executable, "manage.py", *args]


def celery(*args: str) -> list[str]:
    """``celery -A algotrader ...`` with this interpreter."""
    return [sys.executable, "-m", "celery", "-A", "algotrader", *args]


_SHELL_PARAMETER = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


def procfile_command(
    process: str, env: Mapping[str, str] | None = None, *, procfile: Path = ROOT / "Procfile"
) -> list[str]:
    """The Procfile's command line for ``process`` as honcho's shell would run it with
    ``env`` (``${VAR:-default}`` expanded), with ``celery`` and ``python`` run by this
    interpreter: so that a benchmark or a test starts a process exactly as production
    does, and follows the Procfile when it changes."""
    env = os.environ if env is None else env
    for line in procfile.read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process:
            break
    else:
        raise KeyError(f"no {process!r} process in {procfile}")

    def expand(match: re.Match[str]) -> str:
        variable, operator, word = match.groups()
        value = env.get(variable, "")
        if value:
            return value
        if operator == "?":
            raise KeyError(f"{variable} must be set: {word}")
        return word or ""

    words = shlex.split(_SHELL_PARAMETER.sub(expand, command))
    if words[0] == "celery":
        return [sys.executable, "-m", "celery", *words[1:]]
    if words[0] == "python":
        return [sys.executable, *words[1:]]
    return [str(Path(sys.executable).parent / words[0]), *words[1:]]


DEFAULT_FORMATION = "worker=2"


def procfile_formation(env: Mapping[str, str] | None = None) -> dict[str, int]:
    """How many of each Procfile process run: ``PROCESS_FORMATION`` in honcho's ``--concurrency``
    syntax (``worker=2``), one of each it does not name. Two orders workers are two fetch streams
    and two GILs, which bound how fast a market-open burst of BUYs starts (docs/benchmarks.md)."""
    env = os.environ if env is None else env
    formation: dict[str, int] = {}
    for entry in (env.get("PROCESS_FORMATION") or DEFAULT_FORMATION).split(","):
        name, _, count = entry.partition("=")
        if not name.strip() or not count.strip().isdigit() or int(count) < 1:
            raise ValueError(f"PROCESS_FORMATION: {entry!r} is not process=count (count at least 1)")
        formation[name.strip()] = int(count)
    return formation


def honcho_concurrency(env: Mapping[str, str] | None = None) -> list[str]:
    """``honcho start``'s option for the formation: ``["-c", "worker=2"]``."""
    return ["-c", ",".join(f"{name}={count}" for name, count in procfile_formation(env).items())]


# What every process uses when DATABASE_URL is unset; `make run` starts a private server here
# when nothing answers.
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/algotrader"

LOG_FORMATS = ("text", "json")


def log_format(env: Mapping[str, str] | None = None) -> str:
    """The format every process logs in: ``LOG_FORMAT``, else JSON in production (for a log
    pipeline) and one readable text line elsewhere. The settings read it, and `make run`
    leaves the time and process name to the text lines instead of honcho's prefix."""
    env = os.environ if env is None else env
    chosen = env.get("LOG_FORMAT") or ("json" if env.get("DJANGO_ENV") == "production" else "text")
    if chosen not in LOG_FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {chosen!r}")
    return chosen


def procfile_instances(process: str, env: Mapping[str, str] | None = None) -> list[tuple[str, list[str]]]:
    """``(name, command)`` of each instance of ``process`` the formation runs, named and
    expanded as honcho does (``worker.1``, ``worker.2``; ``HONCHO_PROCESS_NAME`` set)."""
    env = os.environ if env is None else env
    count = procfile_formation(env).get(process, 1)
    instances = []
    for index in range(1, count + 1):
        name = f"{process}.{index}"
        instances.append((name, procfile_command(process, {**env, "HONCHO_PROCESS_NAME": name})))
    return instances


def wait_until(
    condition: Callable[[], T | None], *, timeout: float, interval: float = 0.05, why: Callable[[], str] | None = None
) -> T:
    """Poll ``condition`` until it returns something truthy and return that; on timeout
    raise ``TimeoutError`` with ``why()`` (typically the processes' logs)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(why() if why else f"not met within {timeout} s")
        time.sleep(interval)


class ProcessGroup:
    """Named subprocesses started in ``folder`` (their logs: ``folder/<name>.log``)."""

    def __init__(self, folder: Path, env: Mapping[str, str] | None = None, *, cwd: Path = ROOT) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.cwd = cwd
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}

    def start(
        self, name: str, command: Sequence[str], *, env: Mapping[str, str] | None = None, log: bool = True
    ) -> subprocess.Popen[bytes]:
        """Start ``command``; ``env`` adds to the group's environment. ``log=False`` leaves
        the process on this terminal (``make run``'s honcho)."""
        if name in self.processes and self.processes[name].poll() is None:
            raise RuntimeError(f"{name} is already running")
        output: IO[bytes] | None = None
        if log:
            output = self._logs[name] = self.log_path(name).open("ab")
        self.processes[name] = subprocess.Popen(  # noqa: S603 - commands are built by our own callers
            list(command),
            cwd=self.cwd,
            env={**self.env, **(env or {})},
            stdout=output,
            stderr=subprocess.STDOUT if log else None,
            start_new_session=True,
        )
        return self.processes[name]

    def log_path(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    def log(self, name: str) -> str:
        path = self.log_path(name)
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self, tail: int = 6000) -> str:
        """The end of every process's log, for an assertion message."""
        return "\n".join(f"--- {name} (rc={p.poll()})\n{self.log(name)[-tail:]}" for name, p in self.processes.items())

    def alive(self, name: str) -> bool:
        process = self.processes.get(name)
        return process is not None and process.poll() is None

    def dead(self) -> dict[str, int]:
        """Processes that exited, with their return codes."""
        return {name: rc for name, p in self.processes.items() if (rc := p.poll()) is not None}

    def terminate(self, name: str, timeout: float = 20) -> int:
        self._signal(name, signal.SIGTERM)
        return self._reap(name, time.monotonic() + timeout)

    def stop_all(self, timeout: float = 20) -> dict[str, int]:
        """SIGTERM to all at once (a serial stop multiplies the grace periods), newest first."""
        names = list(reversed(self.processes))
        for name in names:
            self._signal(name, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        codes = {name: self._reap(name, deadline) for name in names}
        for handle in self._logs.values():
            handle.close()
        self._logs.clear()
        return codes

    def kill_all(self) -> None:
        """SIGKILL to every process at once: no handler, no cleanup, nothing acknowledged
        (what a crash of the whole machine looks like to the broker and the database)."""
        for name in self.processes:
            self._signal(name, signal.SIGKILL)
        for process in self.processes.values():
            process.wait()

    def _signal(self, name: str, signum: int) -> None:
        process = self.processes[name]
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signum)

    def _reap(self, name: str, deadline: float) -> int:
        process = self.processes[name]
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self._signal(name, signal.SIGKILL)
            process.wait()
        return int(process.returncode)

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop_all()
