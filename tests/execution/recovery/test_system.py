"""Recovery in one process, on the real PostgreSQL and Redis: the runtime rebuilt from the
database after a flush (every key of the architecture, with the right stop prices, locks
left alone, stale entries gone, never moved back), live orders reconciled by tag, lost
order tasks sent again, beat's slots resynced, the queue bindings declared again, X1/X4."""

import threading
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from algotrader import redis_keys
from algotrader.celery import app
from algotrader.queues import CeleryQueue
from algotrader.redis_client import get_redis
from brokers.adapters.base import OrderRequest, Side
from brokers.adapters.paper import PaperAdapter
from execution.models import Order
from execution.recovery import system as recovery
from execution.recovery.runtime import runtime_rebuild
from execution.recovery.system import Trigger, system_recover
from execution.recovery.watch import runtime_intact
from execution.services import locks
from execution.services.orders import order_create
from monitoring.models import EventLog
from strategies import runtime, slots
from strategies.models import Strategy
from strategies.stoploss_index import stoploss_armed
from tests.strategies.factories_scheduling import strategy_create
from tests.strategies.scheduling_helpers import queued

pytestmark = pytest.mark.django_db

INFY, TCS = "NSE:INFY", "NSE:TCS"


@pytest.fixture(autouse=True)
def quick_execution(settings: Any) -> None:
    settings.PAPER_LATENCY_MS = 0
    settings.ORDER_FOLLOW_SECONDS = 5.0
    settings.ORDER_UNKNOWN_GRACE_SECONDS = 0.5
    settings.PROTECTIVE_STOPS = False  # today's exits, as the execution conftest has it


def running(*, symbol: str = "INFY", **fields: Any) -> Strategy:
    now = timezone.now()
    fields.setdefault("buy_fire_at", now + timedelta(minutes=10))
    fields.setdefault("sell_fire_at", now + timedelta(minutes=20))
    if fields.get("position") == Strategy.Position.BOUGHT:
        fields.setdefault("entry_price", Decimal("1540.20"))
        fields.setdefault("stop_trigger_price", Decimal("1524.80"))
    strategy = strategy_create(**fields)
    if symbol != strategy.symbol:
        Strategy.objects.filter(pk=strategy.pk).update(symbol=symbol)
        strategy.refresh_from_db()
    return strategy


def x_events(code: str) -> list[EventLog]:
    return list(EventLog.objects.filter(code=code).order_by("id"))


def backdate(strategy: Strategy, seconds: float = 30) -> None:
    """As if nobody had touched it for a while (what the settlement's cutoff looks at)."""
    past = timezone.now() - timedelta(seconds=seconds)
    Strategy.objects.filter(pk=strategy.pk).update(updated_at=past)
    Order.objects.filter(strategy=strategy).update(updated_at=past)


def test_a_flushed_redis_is_rebuilt_with_every_running_strategy_and_the_stops_of_held_positions():
    waiting = running()
    held = running(position=Strategy.Position.BOUGHT)
    percent = running(
        symbol="TCS", position=Strategy.Position.BOUGHT, entry_price=Decimal("3000"), stop_trigger_price=Decimal("2940")
    )
    stopped = running(status=Strategy.Status.STOPPED)
    get_redis().flushdb()
    assert not runtime_intact()

    report = system_recover(trigger=Trigger.COMMAND)

    redis = get_redis()
    assert report is not None and report.loaded.strategies == 3 and report.loaded.stops_armed == 2
    assert {int(m) for m in redis.smembers(redis_keys.symbol_strategies(INFY))} == {waiting.pk, held.pk}
    assert {int(m) for m in redis.smembers(redis_keys.symbol_strategies(TCS))} == {percent.pk}
    assert stoploss_armed(instrument=INFY) == {held.pk: Decimal("1524.8")}
    assert stoploss_armed(instrument=TCS) == {percent.pk: Decimal("2940.0")}
    copy = redis.hgetall(redis_keys.strategy(held.pk))
    assert copy == runtime.runtime_fields(Strategy.objects.get(pk=held.pk))
    assert not redis.exists(redis_keys.strategy(stopped.pk))
    assert runtime_intact()
    [x1], [x4] = x_events("X1"), x_events("X4")
    assert x1.id < x4.id and x1.user_id is None and x4.user_id is None
    assert x1.payload["strategies"] == 3 and x1.payload["stops_armed"] == 2 and x1.payload["instruments"] == 2
    assert x4.payload["trigger"] == "command" and x4.payload["errors"] == []


def test_a_stop_is_armed_at_the_price_in_the_database_not_a_stale_one():
    held = running(position=Strategy.Position.BOUGHT)
    redis = get_redis()
    redis.zadd(redis_keys.stop_losses(INFY), {str(held.pk): 1400.0})  # armed before an update moved it

    runtime_rebuild()

    assert stoploss_armed(instrument=INFY) == {held.pk: Decimal("1524.8")}


def test_locks_are_left_alone():
    strategy = running()
    lock = locks.lock_acquire(strategy_id=strategy.pk)

    runtime_rebuild()

    assert lock is not None and get_redis().get(redis_keys.lock_state(strategy.pk)) == lock.token


def test_a_rebuild_never_moves_a_runtime_copy_back():
    strategy = running()
    redis = get_redis()
    newer = {**runtime.runtime_fields(strategy), "version": str(strategy.version + 1), "position": "BUYING"}
    redis.hset(redis_keys.strategy(strategy.pk), mapping=newer)

    runtime_rebuild()

    assert redis.hgetall(redis_keys.strategy(strategy.pk)) == newer


def test_entries_of_strategies_no_longer_running_are_removed():
    exited = running(position=Strategy.Position.BOUGHT)
    runtime.runtime_load(exited)
    get_redis().zadd(redis_keys.stop_losses(INFY), {str(exited.pk): 1524.8})
    Strategy.objects.filter(pk=exited.pk).update(status=Strategy.Status.EXITED, position=Strategy.Position.SOLD)
    kept_position = running(status=Strategy.Status.STOPPED, position=Strategy.Position.BOUGHT)
    get_redis().zadd(redis_keys.stop_losses(INFY), {str(kept_position.pk): 1524.8})  # a clear lost to a crash
    alive = running()

    loaded = runtime_rebuild()

    redis = get_redis()
    assert loaded.stale_removed == 2
    assert not redis.exists(redis_keys.strategy(exited.pk))
    assert {int(m) for m in redis.smembers(redis_keys.symbol_strategies(INFY))} == {alive.pk}
    assert stoploss_armed(instrument=INFY) == {}  # a kept position is the user's: no stop may exit it


def test_a_pending_buy_the_broker_has_is_adopted_and_its_stop_armed():
    strategy = running(position=Strategy.Position.BUYING, buy_fire_at=timezone.now() - timedelta(seconds=1))
    order = order_create(strategy=strategy, reason=Order.Reason.BUY)
    assert order.tag is not None
    PaperAdapter(strategy.broker_account).place_order(
        OrderRequest(exchange="NSE", symbol="INFY", side=Side.BUY, quantity=1, tag=order.tag)
    )  # the worker died after the broker took it
    backdate(strategy)
    get_redis().flushdb()

    report = system_recover(trigger=Trigger.REDIS_FLUSH)

    order.refresh_from_db()
    strategy.refresh_from_db()
    assert report is not None and report.orders_settled >= 1
    assert order.status == Order.Status.COMPLETE and strategy.position == Strategy.Position.BOUGHT
    assert stoploss_armed(instrument=INFY) == {strategy.pk: Decimal(repr(float(strategy.stop_trigger_price or 0)))}
    assert Order.objects.filter(strategy=strategy).count() == 1
    assert x_events("X4")[-1].payload["trigger"] == "redis_flush"


def test_an_unknown_exit_the_broker_never_had_is_placed_again_once():
    strategy = running(position=Strategy.Position.EXITING, exit_reason="STOPLOSS")
    lost = order_create(strategy=strategy, reason=Order.Reason.STOPLOSS)
    Order.objects.filter(pk=lost.pk).update(status=Order.Status.UNKNOWN)
    backdate(strategy)

    system_recover(trigger=Trigger.COMMAND)
    system_recover(trigger=Trigger.COMMAND)

    from brokers.models import PaperOrder

    book = list(PaperOrder.objects.filter(account_id=strategy.broker_account_id).values_list("side", "status"))
    assert book == [("SELL", "COMPLETE")]
    strategy.refresh_from_db()
    assert (strategy.status, strategy.position) == ("EXITED", "EXITED_BY_SL")


def test_order_tasks_lost_with_the_queues_are_sent_again():
    now = timezone.now()
    fired_buy = running(buy_fire_at=now - timedelta(seconds=10), buy_fired_at=now - timedelta(seconds=10))
    fired_sell = running(
        position=Strategy.Position.BOUGHT,
        buy_fire_at=now - timedelta(minutes=5),
        buy_fired_at=now - timedelta(minutes=5),
        sell_fire_at=now - timedelta(seconds=10),
        sell_fired_at=now - timedelta(seconds=10),
    )
    stopping = running(status=Strategy.Status.STOPPED, position=Strategy.Position.EXITING, exit_reason="STOP")
    too_late = running(buy_fire_at=now - timedelta(minutes=2), buy_fired_at=now - timedelta(minutes=2))
    backdate(stopping)
    get_redis().flushdb()

    system_recover(trigger=Trigger.REDIS_FLUSH)

    # Settlement (which recovery runs first) rescues a lost BUY and a lost STOP exit
    # in-process once they are old enough; what it leaves is sent again as a task.
    # Either way each is handled exactly once, and a BUY past its grace by neither.
    sent = {(q.task.rsplit(".", 1)[-1], q.args[0], q.kwargs.get("reason")) for q in queued(CeleryQueue.ORDERS)}
    placed = dict(Order.objects.values_list("strategy_id", "reason"))
    expected = {
        fired_buy.pk: ("execute_buy_task", None, "BUY"),
        fired_sell.pk: ("execute_sell_task", "SELL", "SELL"),
        stopping.pk: ("execute_sell_task", "STOP", "STOP"),
    }
    for strategy_id, (task, reason, order_reason) in expected.items():
        as_task = (task, strategy_id, reason) in sent
        as_order = placed.get(strategy_id) == order_reason
        assert as_task != as_order, (strategy_id, sent, placed)
    assert len(sent) + len(placed) == len(expected)
    assert too_late.pk not in {args for _, args, _ in sent} and too_late.pk not in placed


def test_the_queue_bindings_are_declared_again_after_a_flush():
    get_redis().flushdb()  # the bindings go with it: a published message would be dropped

    system_recover(trigger=Trigger.REDIS_FLUSH)
    app.send_task("execution.tasks.execute_stoploss_task", args=[1], queue=CeleryQueue.STOPLOSS.value)

    assert get_redis().llen(CeleryQueue.STOPLOSS.value) == 1


def test_a_missing_slot_of_a_running_strategy_is_created_and_an_unneeded_one_deleted():
    now = timezone.now().replace(microsecond=0)
    strategy = running(buy_fire_at=now + timedelta(minutes=10), sell_fire_at=now + timedelta(minutes=20))
    later: dict[str, Any] = {"buy_fire_at": now + timedelta(minutes=30), "sell_fire_at": now + timedelta(minutes=40)}
    orphan = running(status=Strategy.Status.STOPPED, **later)
    slots.schedule_strategy(orphan)  # its STOP was lost before the slot went

    report = system_recover(trigger=Trigger.COMMAND)

    names = set(PeriodicTask.objects.filter(name__startswith=slots.SLOT_PREFIX).values_list("name", flat=True))
    assert names == {slots.slot_name(strategy.buy_fire_at), slots.slot_name(strategy.sell_fire_at)}
    assert report is not None and report.slots_created == 2


def test_manage_py_recover_twice_gives_the_same_state():
    running()
    running(position=Strategy.Position.BOUGHT)
    get_redis().flushdb()

    call_command("recover")
    first = _snapshot()
    call_command("recover")

    assert _snapshot() == first and first
    assert len(x_events("X1")) == 2 and len(x_events("X4")) == 2


def _snapshot() -> dict[str, Any]:
    redis = get_redis()
    state: dict[str, Any] = {}
    for pattern in (redis_keys.STRATEGY_PATTERN, redis_keys.SYMBOL_STRATEGIES_PATTERN, redis_keys.STOP_LOSSES_PATTERN):
        for key in redis.scan_iter(match=pattern):
            kind = redis.type(key)
            if kind == "hash":
                state[key] = redis.hgetall(key)
            elif kind == "set":
                state[key] = sorted(redis.smembers(key))
            else:
                state[key] = redis.zrange(key, 0, -1, withscores=True)
    return state


def test_a_recovery_running_elsewhere_is_not_repeated():
    from django.db import connections

    running()
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, 0)", [0x5EC0E7])
        assert system_recover(trigger=Trigger.WORKER_START) is None
        assert x_events("X4") == []
        with other.cursor() as cursor:  # not by closing: the server ends a session a moment later
            cursor.execute("SELECT pg_advisory_unlock(%s, 0)", [0x5EC0E7])
    finally:
        other.close()
    assert system_recover(trigger=Trigger.WORKER_START) is not None


@pytest.mark.django_db(transaction=True)
def test_a_recovery_holding_its_lock_on_another_connection_is_seen_running():
    held, release = threading.Event(), threading.Event()

    def recover_elsewhere() -> None:
        with recovery._recovery_lock(wait=False) as got:
            assert got
            held.set()
            release.wait(10)
        connection.close()

    assert not recovery.recovery_running()
    thread = threading.Thread(target=recover_elsewhere)
    thread.start()
    assert held.wait(10)
    try:
        assert recovery.recovery_running()
    finally:
        release.set()
        thread.join(10)
    assert not recovery.recovery_running()
