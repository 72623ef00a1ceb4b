"""What the market tests look at and build: stop-loss tasks waiting in the ``stoploss``
queue, running strategies in the database and Redis, and events by code."""

import base64
import json
from datetime import time, timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from algotrader.celery import app
from algotrader.queues import CeleryQueue
from algotrader.redis_client import get_redis
from brokers.models import BrokerAccount
from monitoring.models import EventLog
from strategies import runtime
from strategies.models import Strategy
from tests.factories import BrokerAccountFactory

STOPLOSS_TASK = "execution.tasks.execute_stoploss_task"


def declare_queues() -> None:
    """As a worker does at start-up: the tests flush Redis, the queue bindings with it."""
    with app.connection_for_write() as connection:
        for queue in app.conf.task_queues:
            queue(connection.default_channel).declare()


def stoploss_tasks() -> list[int]:
    """Strategy ids of the stop-loss tasks waiting in the ``stoploss`` queue, oldest first."""
    ids = []
    for raw in reversed(get_redis().lrange(CeleryQueue.STOPLOSS.value, 0, -1)):
        message = json.loads(raw)
        assert message["headers"]["task"] == STOPLOSS_TASK
        args, _, _ = json.loads(base64.b64decode(message["body"]))
        ids.append(int(args[0]))
    return ids


def stoploss_task_calls() -> list[tuple[int, dict[str, Any]]]:
    """(strategy id, kwargs) of the stop-loss tasks waiting, oldest first: a target's or a
    trailed stop's carries its reason."""
    calls = []
    for raw in reversed(get_redis().lrange(CeleryQueue.STOPLOSS.value, 0, -1)):
        args, kwargs, _ = json.loads(base64.b64decode(json.loads(raw)["body"]))
        calls.append((int(args[0]), kwargs))
    return calls


def queued_tasks(queue: CeleryQueue) -> list[tuple[str, list[Any]]]:
    """(task name, args) of the tasks waiting in ``queue``, oldest first."""
    tasks = []
    for raw in reversed(get_redis().lrange(queue.value, 0, -1)):
        message = json.loads(raw)
        args, _, _ = json.loads(base64.b64decode(message["body"]))
        tasks.append((message["headers"]["task"], args))
    return tasks


def running_strategy(
    *, symbol: str = "INFY", exchange: str = "NSE", account: BrokerAccount | None = None, **fields: Any
) -> Strategy:
    """A RUNNING strategy on the SIM calendar, loaded into Redis as a START leaves it."""
    account = account or BrokerAccountFactory.create()
    now = timezone.now()
    strategy = Strategy.objects.create(
        owner=account.owner,
        broker_account=account,
        venue="SIM",
        exchange=exchange,
        symbol=symbol,
        quantity=1,
        trade_date=now.date(),
        buy_at=time(9, 15),
        sell_at=time(15, 15),
        stop_loss_price=Decimal("1.00"),
        status=Strategy.Status.RUNNING,
        buy_fire_at=now - timedelta(minutes=1),
        sell_fire_at=now + timedelta(hours=1),
        **fields,
    )
    runtime.runtime_load(strategy)
    return strategy


def events(code: str, **filters: Any) -> list[EventLog]:
    return list(EventLog.objects.filter(code=code, **filters).order_by("id"))
