"""Real Celery workers for the execution tests: subprocesses on the test database and
Redis, consuming the queues they are given, stopped (or killed) by the test."""

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.db import connection

from algotrader.celery import app
from algotrader.processes import procfile_command
from algotrader.redis_client import get_redis
from execution.tasks import settle_orders_task
from tests.strategies.scheduling_helpers import declare_queues
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Worker:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def text(self, tail: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-tail:]

    def active_pids(self) -> list[int]:
        """The pool processes running a task now, as the worker itself reports them."""
        active = app.control.inspect(destination=[self.name], timeout=2).active() or {}
        return [task["worker_pid"] for task in active.get(self.name, [])]

    def busy(self) -> bool:
        """A task running or reserved by this worker, as it reports (no reply counts as busy)."""
        return not idle([self.name])

    def kill(self) -> None:
        """SIGKILL the whole worker, pool included: nothing acknowledges or requeues."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()


def database_url() -> str:
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))


def _worker_name() -> str:
    return f"exectest-{uuid.uuid4().hex[:8]}@{os.uname().nodename}"


def _worker_env(env: dict[str, str] | None) -> dict[str, str]:
    # Protective stops off, as in the in-process execution tests (conftest), unless ``env`` says.
    base = {"PROTECTIVE_STOPS": "false"}
    return {**os.environ, **base, "DATABASE_URL": database_url(), "PYTHONUNBUFFERED": "1", **(env or {})}


@contextmanager
def running_worker(queues: str, log: Path, env: dict[str, str] | None = None, concurrency: int = 1) -> Iterator[Worker]:
    """A prefork worker consuming ``queues``, answering pings before this yields."""
    name = _worker_name()
    command = ["worker", "-Q", queues, "-n", name, "--concurrency", str(concurrency), "--without-mingle"]
    with _started(
        name, [sys.executable, "-m", "celery", "-A", "algotrader", *command, "--loglevel", "INFO"], log, env
    ) as worker:
        yield worker


@contextmanager
def procfile_worker(process: str, log: Path, env: dict[str, str] | None = None) -> Iterator[Worker]:
    """The Procfile's ``process`` worker exactly as production starts it (its pool, its
    concurrency), under a name of its own, answering pings before this yields."""
    name = _worker_name()
    full_env = _worker_env(env)
    command = procfile_command(process, full_env)
    command[command.index("-n") + 1] = name
    with _started(name, command, log, env) as worker:
        yield worker


@contextmanager
def _started(name: str, command: list[str], log: Path, env: dict[str, str] | None) -> Iterator[Worker]:
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=_worker_env(env),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    worker = Worker(name, process, log)
    try:
        declare_queues()

        def answering() -> bool:
            assert process.poll() is None, worker.text()
            return bool(app.control.ping(destination=[name], timeout=0.5))

        wait_until(answering, timeout=60, interval=0, message=worker.text)
        yield worker
    finally:
        worker.stop()


@contextmanager
def settling(every: float = 0.5) -> Iterator[None]:
    """What celery beat does every ORDER_SETTLE_SECONDS."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            settle_orders_task.delay()

    ticking = threading.Thread(target=beat, daemon=True)
    ticking.start()
    try:
        yield
    finally:
        stop.set()
        ticking.join()


def idle(names: Iterable[str], queues: Iterable[str] = ()) -> bool:
    """Nothing waits in ``queues`` and none of the workers ``names`` runs or holds a task,
    as they report it (no reply counts as busy): the fact that ends a test's work."""
    redis = get_redis()
    if any(redis.llen(queue) for queue in queues):
        return False
    names = list(names)
    inspect = app.control.inspect(destination=names, timeout=2, limit=len(names))
    active, reserved = inspect.active(), inspect.reserved()
    if active is None or reserved is None or any(name not in active or name not in reserved for name in names):
        return False
    return not any(active[name] or reserved[name] for name in names)


def wait_idle(workers: Iterable[Worker], queues: Iterable[str], timeout: float = 60) -> None:
    """Until ``idle``: a test's condition can hold while a task is still finishing (a
    redelivered duplicate, its last events), and the transactional test's flush (TRUNCATE)
    meeting that task's transaction deadlocks."""
    pending = list(workers)
    wait_until(
        lambda: idle([worker.name for worker in pending], queues),
        timeout=timeout,
        message=lambda: "\n".join(worker.text() for worker in pending),
    )
