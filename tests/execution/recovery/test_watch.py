"""The recovery watch a worker or the listener runs: a recovery at its start, then one as
soon as Redis has lost the runtime (the sentinel flushed away, or written to another
server than the one answering now: a restart from an old snapshot, a failover)."""

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connections
from django.utils import timezone

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from execution.recovery.system import Trigger
from execution.recovery.watch import recovery_watch, runtime_intact
from monitoring.models import EventLog
from strategies.models import Strategy
from strategies.stoploss_index import stoploss_armed
from tests.strategies.factories_scheduling import strategy_create

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def triggers() -> list[str]:
    return [str(e.payload["trigger"]) for e in EventLog.objects.filter(code="X4").order_by("id")]


def wait_for(condition: Callable[[], object], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: X4 triggers {triggers()}"
        time.sleep(0.05)


@pytest.fixture
def watch() -> Iterator[threading.Event]:
    stop = threading.Event()

    def run() -> None:
        try:
            recovery_watch(stop=stop, trigger=Trigger.WORKER_START, detail={"worker": "test"}, interval=0.1)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield stop
    stop.set()
    thread.join(timeout=30)


def test_a_flush_is_recovered_by_the_watch_within_a_second(watch):
    now = timezone.now()
    held = strategy_create(
        buy_fire_at=now - timedelta(minutes=1),
        sell_fire_at=now + timedelta(hours=1),
        position="BOUGHT",
        entry_price=Decimal("100.00"),
        stop_trigger_price=Decimal("99.00"),
    )
    wait_for(lambda: triggers() == ["worker_start"], "the start recovery")

    get_redis().flushdb()
    flushed_at = time.monotonic()
    wait_for(lambda: stoploss_armed(instrument="NSE:INFY") == {held.pk: Decimal("99.0")}, "the stop re-armed")

    print(f"stop re-armed {time.monotonic() - flushed_at:.2f} s after the flush")  # noqa: T201
    wait_for(lambda: triggers() == ["worker_start", "redis_flush"], "X4 for the flush")
    assert runtime_intact()
    assert Strategy.objects.get(pk=held.pk).status == "RUNNING"


def test_a_redis_server_that_is_not_the_one_recovered_on_is_recovered_again(watch):
    wait_for(lambda: triggers() == ["worker_start"], "the start recovery")
    sentinel = json.loads(str(get_redis().get(redis_keys.recovery_sentinel())))

    # What a restart from an older snapshot (or a failover) looks like: the sentinel is
    # there, but it was written while another server answered.
    get_redis().set(redis_keys.recovery_sentinel(), json.dumps({**sentinel, "server": "an earlier server"}))

    wait_for(lambda: triggers() == ["worker_start", "redis_restart"], "X4 for the restart")
    time.sleep(0.5)
    assert triggers() == ["worker_start", "redis_restart"]  # once: the new sentinel names this server
