"""``manage.py recover`` run concurrently, as real processes, and two recoveries running at
once with the advisory lock taken away: the same end state as one run, and the exit lost
with its worker is placed again exactly once (the paper broker's book is the judge)."""

import os
import subprocess
import sys
import threading
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.db import connection, connections
from django.utils import timezone

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from brokers.models import PaperOrder
from execution.models import Order
from execution.recovery import system as recovery
from execution.recovery.system import Trigger, system_recover
from execution.services.orders import order_create
from monitoring.models import EventLog
from strategies.models import Strategy
from strategies.stoploss_index import stoploss_armed
from tests.factories import BrokerAccountFactory
from tests.strategies.factories_scheduling import strategy_create

ROOT = Path(__file__).resolve().parents[3]
INFY = "NSE:INFY"

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def session() -> tuple[list[Strategy], Strategy]:
    """Running strategies (two holding positions) and one whose stop-loss exit was lost
    with its worker: the intent UNKNOWN, never at the broker."""
    account = BrokerAccountFactory.create()
    now = timezone.now()
    plan: dict[str, Any] = {"buy_fire_at": now - timedelta(minutes=1), "buy_fired_at": now - timedelta(minutes=1)}
    plan["sell_fire_at"] = now + timedelta(hours=1)
    held: dict[str, Any] = {
        "position": "BOUGHT",
        "entry_price": Decimal("1540.20"),
        "stop_trigger_price": Decimal("1524.80"),
    }
    strategies = [
        strategy_create(account=account, **plan, **held),
        strategy_create(account=account, **plan, **held),
        strategy_create(account=account, buy_fire_at=now + timedelta(minutes=5), sell_fire_at=now + timedelta(hours=1)),
    ]
    losing = strategy_create(account=account, **plan, **{**held, "position": "EXITING", "exit_reason": "STOPLOSS"})
    lost = order_create(strategy=losing, reason=Order.Reason.STOPLOSS)
    past = timezone.now() - timedelta(seconds=30)
    Order.objects.filter(pk=lost.pk).update(status=Order.Status.UNKNOWN, updated_at=past)
    Strategy.objects.filter(pk=losing.pk).update(updated_at=past)
    get_redis().flushdb()
    return strategies, losing


def end_state(strategies: list[Strategy], losing: Strategy) -> dict[str, Any]:
    redis = get_redis()
    return {
        "members": sorted(redis.smembers(redis_keys.symbol_strategies(INFY))),
        "copies": {s.pk: redis.hgetall(redis_keys.strategy(s.pk)) for s in strategies},
        "stops": stoploss_armed(instrument=INFY),
        "book": list(
            PaperOrder.objects.filter(account_id=losing.broker_account_id).values_list("side", "status", "tag")
        ),
        "orders": list(Order.objects.filter(strategy=losing).order_by("id").values_list("reason", "status")),
        "losing": Strategy.objects.filter(pk=losing.pk).values_list("status", "position").get(),
    }


def assert_one_exit(state: dict[str, Any], strategies: list[Strategy]) -> None:
    assert [(side, status) for side, status, _ in state["book"]] == [("SELL", "COMPLETE")]
    assert state["orders"] == [("STOPLOSS", "FAILED"), ("STOPLOSS", "COMPLETE")]
    assert state["losing"] == ("EXITED", "EXITED_BY_SL")
    assert state["members"] == sorted(str(s.pk) for s in strategies)
    assert set(state["stops"]) == {strategies[0].pk, strategies[1].pk}


def recover_command() -> subprocess.Popen[bytes]:
    parts = urlsplit(os.environ["DATABASE_URL"])
    env = {
        **os.environ,
        "DATABASE_URL": urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"])),
        "PAPER_LATENCY_MS": "0",
        "ORDER_SETTLE_AFTER_SECONDS": "5",
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "recover"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def test_manage_py_recover_run_concurrently_and_again_gives_one_end_state_and_one_exit(settings):
    settings.PAPER_LATENCY_MS = 0
    strategies, losing = session()

    first, second = recover_command(), recover_command()
    outputs = [process.communicate(timeout=120)[0].decode(errors="replace") for process in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    state = end_state(strategies, losing)
    third = recover_command()
    third.communicate(timeout=120)

    assert_one_exit(state, strategies)
    assert end_state(strategies, losing) == state
    assert EventLog.objects.filter(code="X4", payload__trigger="command").count() == 3
    assert EventLog.objects.filter(code="X1", payload__trigger="command").count() == 3


def test_two_recoveries_at_once_without_the_lock_still_give_one_exit(settings, monkeypatch):
    settings.PAPER_LATENCY_MS = 0
    strategies, losing = session()

    @contextmanager
    def no_lock(*, wait: bool) -> Any:
        yield True

    monkeypatch.setattr(recovery, "_recovery_lock", no_lock)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            start.wait()
            system_recover(trigger=Trigger.COMMAND)
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    state = end_state(strategies, losing)
    system_recover(trigger=Trigger.COMMAND)
    assert_one_exit(state, strategies)
    assert end_state(strategies, losing) == state
