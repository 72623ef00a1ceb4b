"""Loaded into the tick-to-order benchmark's stop-loss worker with ``--include
bench.stoploss_bench`` (never in production). With ``BENCH_STOPLOSS=bench`` (or while the
execution engine has no ``execution.tasks.execute_stoploss_task``) this registers a
minimal one under that name, in place of the engine's: read the strategy's runtime copy from Redis
(one round trip) and post its SELL to the Kite simulator (one HTTP POST)."""

import os
import time
from collections.abc import Mapping
from typing import Any

import requests
from celery import Task
from celery.signals import task_postrun, task_prerun

import execution.tasks
from algotrader import redis_keys
from algotrader.celery import app
from algotrader.redis_client import get_redis

TASK_NAME = "execution.tasks.execute_stoploss_task"
_session = requests.Session()


def place_stoploss_order(fields: Mapping[Any, Any], strategy_id: int) -> None:
    api_root = os.environ["KITE_API_ROOT"]
    response = _session.post(
        f"{api_root}/orders/regular",
        data={
            "exchange": fields["exchange"],
            "tradingsymbol": fields["symbol"],
            "transaction_type": "SELL",
            "quantity": fields["quantity"],
            "order_type": "MARKET",
            "product": "MIS",
            "validity": "DAY",
            "tag": f"SL{strategy_id}",
        },
        headers={
            "X-Kite-Version": "3",
            "Authorization": f"token {os.environ['BENCH_KITE_API_KEY']}:{os.environ['BENCH_KITE_ACCESS_TOKEN']}",
        },
        timeout=5,
    )
    response.raise_for_status()


STARTED_KEY = "bench:stoploss_started"  # the benchmark's own Redis database


def execute_stoploss_bench(strategy_id: int) -> None:
    started = time.time()
    fields = get_redis().hgetall(redis_keys.strategy(strategy_id))
    place_stoploss_order(fields, strategy_id)
    get_redis().hset(STARTED_KEY, str(strategy_id), repr(started))  # after the order: off the measured path


_starts: dict[str, float] = {}


@task_prerun.connect
def note_start(sender: Task[Any, Any] | None = None, task_id: str = "", **_: Any) -> None:
    """The engine's task's start, kept in memory: written after it ends, off the measured path."""
    if sender is not None and sender.name == TASK_NAME and os.environ.get("BENCH_STOPLOSS") == "execution":
        _starts[task_id] = time.time()


@task_postrun.connect
def record_start(sender: Task[Any, Any] | None = None, task_id: str = "", args: Any = None, **_: Any) -> None:
    started = _starts.pop(task_id, None)
    if started is not None and args:
        get_redis().hset(STARTED_KEY, str(args[0]), repr(started))


if os.environ.get("BENCH_STOPLOSS") == "bench" or not hasattr(execution.tasks, "execute_stoploss_task"):
    app.tasks.pop(TASK_NAME, None)
    app.tasks.register(app.task(name=TASK_NAME, acks_late=True, shared=False)(execute_stoploss_bench))
