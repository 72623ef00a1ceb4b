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
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def triggers() -> list[str]:
    return [str(e.payload["trigger"]) for e in EventLog.objects.filter(code="X4").order_by("id")]


def x4_triggers(what: str) -> Callable[[], str]:
    return lambda: f"{what}: X4 triggers {triggers()}"


@pytest.fixture
def watch() -> Iterator[Callable[[], None]]:
    """The watch running on a thread; calling what this yields ends it, and returns once
    its last look (and any recovery it started) is over."""
    stop = threading.Event()

    def run() -> None:
        try:
            recovery_watch(stop=stop, trigger=Trigger.WORKER_START, detail={"worker": "test"}, interval=0.1)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def end() -> None:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive()

    yield end
    end()


def test_a_flush_is_recovered_by_the_watch_within_a_second(watch):
    now = timezone.now()
    held = strategy_create(
        buy_fire_at=now - timedelta(minutes=1),
        sell_fire_at=now + timedelta(hours=1),
        position="BOUGHT",
        entry_price=Decimal("100.00"),
        stop_trigger_price=Decimal("99.00"),
    )
    wait_until(lambda: triggers() == ["worker_start"], message=x4_triggers("the start recovery"))

    get_redis().flushdb()
    flushed_at = time.monotonic()
    wait_until(
        lambda: stoploss_armed(instrument="NSE:INFY") == {held.pk: Decimal("99.0")},
        message=x4_triggers("the stop re-armed"),
    )

    print(f"stop re-armed {time.monotonic() - flushed_at:.2f} s after the flush")  # noqa: T201
    wait_until(lambda: triggers() == ["worker_start", "redis_flush"], message=x4_triggers("X4 for the flush"))
    assert runtime_intact()
    assert Strategy.objects.get(pk=held.pk).status == "RUNNING"


def test_a_redis_server_that_is_not_the_one_recovered_on_is_recovered_again(watch):
    wait_until(lambda: triggers() == ["worker_start"], message=x4_triggers("the start recovery"))
    sentinel = json.loads(str(get_redis().get(redis_keys.recovery_sentinel())))

    # What a restart from an older snapshot (or a failover) looks like: the sentinel is
    # there, but it was written while another server answered.
    get_redis().set(redis_keys.recovery_sentinel(), json.dumps({**sentinel, "server": "an earlier server"}))

    wait_until(lambda: triggers() == ["worker_start", "redis_restart"], message=x4_triggers("X4 for the restart"))
    wait_until(runtime_intact, message=x4_triggers("the new sentinel"))  # what the watch's next look sees
    watch()
    assert triggers() == ["worker_start", "redis_restart"]  # once: the new sentinel names this server
