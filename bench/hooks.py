"""Loaded into a benchmark's worker with ``--include bench.hooks`` (never in production):
records when each measured task starts, offers a no-op task, and with
``BENCH_TASK_BODY=noop`` empties the BUY task's body, so that what is measured is the
scheduling and the queue, not the E1 stub's database and WebSocket work."""

import os
import time
from typing import Any

from celery import Task, shared_task
from celery.signals import task_prerun

from algotrader.redis_client import get_redis
from execution import services

STARTS_KEY = "bench:task_starts"  # the benchmark's own Redis database
MEASURED = frozenset({"execution.tasks.execute_buy_task", "bench.hooks.noop_task"})

if os.environ.get("BENCH_TASK_BODY") == "noop":

    def _no_buy(*, strategy_id: int, hand_off: bool = False) -> None:
        pass

    services.strategy_buy_execute = _no_buy


@shared_task(acks_late=True)
def noop_task(strategy_id: int) -> None:
    """Does nothing: the floor of what a worker can start."""


@task_prerun.connect
def record_start(sender: Task[Any, Any] | None = None, args: Any = None, **_: Any) -> None:
    if sender is not None and sender.name in MEASURED:
        get_redis().rpush(STARTS_KEY, f"{time.time():.6f}")
