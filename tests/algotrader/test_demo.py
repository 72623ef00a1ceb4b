"""`make demo`'s parts that run without a stack: the plan of its strategies, the fourth lifecycle's
price through the stop and its reading of Celery's remote-control replies; and the outage itself
against a real Celery worker: its consumers cancelled, then added back."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.conf import settings
from django.db import connection

from algotrader.appclient import AppClient
from algotrader.demo import HOLD, OUTAGE_HOLD, Demo
from algotrader.demo_outage import Consumed, Workers, consumed_queues, describe, price_through
from algotrader.processes import ProcessGroup, celery
from tests.waiting import other_sessions_ended, wait_until

KOLKATA = ZoneInfo("Asia/Kolkata")


def active_queue(name: str) -> dict[str, object]:
    return {"name": name, "exchange": {"name": name, "type": "direct"}, "routing_key": name, "durable": True}


def test_an_active_queues_reply_gives_each_worker_queue_once_in_a_stable_order():
    reply = {
        "stoploss@vm": [active_queue("stoploss")],
        "orders-worker.1@vm": [active_queue("orders"), active_queue("scheduler")],
    }

    consumed = consumed_queues(reply)

    assert [(c.worker, c.queue) for c in consumed] == [
        ("orders-worker.1@vm", "orders"),
        ("orders-worker.1@vm", "scheduler"),
        ("stoploss@vm", "stoploss"),
    ]
    assert consumed[0] == Consumed("orders-worker.1@vm", "orders", "orders", "direct", "orders")
    assert describe(consumed) == "orders-worker.1@vm (orders, scheduler), stoploss@vm (stoploss)"


def test_no_worker_answering_is_nothing_to_stop():
    assert consumed_queues(None) == [] and consumed_queues({}) == []


def test_the_price_put_through_the_stop_is_below_its_trigger_on_the_tick_grid():
    price = price_through(Decimal("825.45"))

    assert price < Decimal("825.45")
    assert price % Decimal("0.05") == 0
    assert price == Decimal("817.15")


def test_the_fourth_lifecycle_is_planned_with_the_kite_simulator_only():
    paper = Demo(AppClient("http://127.0.0.1:1"), "paper")
    kite = Demo(AppClient("http://127.0.0.1:1"), "kite-sim")

    assert paper.plan == {"sell": HOLD, "stoploss": HOLD, "stop": HOLD}
    assert kite.plan == {"sell": HOLD, "stoploss": HOLD, "stop": HOLD, "outage": OUTAGE_HOLD}


def test_near_midnight_the_plan_moves_to_the_next_day_so_the_fourth_sells_on_its_buy_day():
    demo = Demo(AppClient("http://127.0.0.1:1"), "kite-sim")

    with time_machine.travel(datetime(2026, 12, 8, 23, 55, tzinfo=KOLKATA), tick=False):
        trade_date, buy = demo.plan_times()

    assert trade_date.isoformat() == "2026-12-09"
    assert (buy + OUTAGE_HOLD).date() == buy.date()


def test_away_from_midnight_the_buy_is_the_lead_ahead_today():
    demo = Demo(AppClient("http://127.0.0.1:1"), "kite-sim")

    with time_machine.travel(datetime(2026, 12, 8, 11, 0, tzinfo=KOLKATA), tick=False):
        trade_date, buy = demo.plan_times()

    assert trade_date.isoformat() == "2026-12-08"
    assert buy - datetime(2026, 12, 8, 11, 0, tzinfo=KOLKATA) == timedelta(seconds=20)


WORKER = f"demotest-{uuid.uuid4().hex[:8]}@{os.uname().nodename}"


@pytest.fixture(scope="module")
def worker(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[str]:
    """A real orders and scheduler worker on the test database and Redis database."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    database_url = urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1"}
    group = ProcessGroup(tmp_path_factory.mktemp("demo-worker"), env)
    group.start(
        "worker",
        celery("worker", "-Q", "orders,scheduler", "-n", WORKER, "--concurrency", "1", "--without-mingle"),
    )
    workers = Workers(settings.CELERY_BROKER_URL)
    try:
        wait_until(lambda: workers.app.control.ping(destination=[WORKER], timeout=0.5), timeout=60, message=group.logs)
        yield WORKER
    finally:
        workers.restore()
        group.stop_all()
        with django_db_blocker.unblock():
            wait_until(other_sessions_ended)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_outage_cancels_every_queue_a_worker_consumes_and_adds_them_back(worker):
    workers = Workers(settings.CELERY_BROKER_URL)

    def mine() -> list[str]:
        return [c.queue for c in workers.consuming() if c.worker == worker]

    stopped = workers.stop()
    during = mine()
    restored = workers.restore()
    after = mine()

    assert {(c.worker, c.queue) for c in stopped} >= {(worker, "orders"), (worker, "scheduler")}
    assert during == []
    assert restored == stopped and workers.restore() == []
    assert after == ["orders", "scheduler"]
