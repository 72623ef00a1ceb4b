"""The timeline is as true as the orders: a state change and the events that record it
commit together, a stop that has fired stays fired through recovery, and nothing is
executed on a strategy after its S5."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import DatabaseError, connection
from django.utils import timezone

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from brokers.adapters.base import OrderRequest, Side
from brokers.adapters.paper import PaperAdapter
from execution.models import Order
from execution.recovery.runtime import runtime_rebuild
from execution.recovery.settlement import orders_settle_interrupted
from execution.recovery.system import Trigger, system_recover
from execution.services import exits, strategy_sell_execute, strategy_stoploss_execute
from execution.services.orders import order_create
from market.services import ticks_ingest
from market.ticks import BATCH_TYPE
from monitoring.models import Alert, EventLog
from strategies.models import Strategy
from strategies.stoploss_index import stoploss_armed
from tests.execution.helpers import codes, orders
from tests.market.helpers import declare_queues, stoploss_tasks
from tests.waiting import wait_until

INFY = "NSE:INFY"


@contextmanager
def event_write_fails(code: str) -> Iterator[None]:
    """The database refuses to record one event code, as a process killed right before
    that write would leave it: whatever commits with it must not commit either."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE OR REPLACE FUNCTION test_event_write_fails() RETURNS trigger AS $$ BEGIN "
            f"IF NEW.code = '{code}' THEN RAISE EXCEPTION 'event % not written', NEW.code; END IF; "
            "RETURN NEW; END $$ LANGUAGE plpgsql"
        )
        cursor.execute(
            "CREATE TRIGGER test_event_write_fails BEFORE INSERT ON monitoring_eventlog "
            "FOR EACH ROW EXECUTE FUNCTION test_event_write_fails()"
        )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER IF EXISTS test_event_write_fails ON monitoring_eventlog")
            cursor.execute("DROP FUNCTION IF EXISTS test_event_write_fails()")


def tick(price: float) -> None:
    ticks_ingest(message={"type": BATCH_TYPE, "ticks": [[INFY, price, time.time()]], "received_at": time.time()})


@pytest.mark.django_db(transaction=True)
def test_an_exit_and_its_outcome_commit_together_or_not_at_all(make_strategy):
    strategy = make_strategy(position="BOUGHT")

    with event_write_fails("L1"), pytest.raises(DatabaseError):
        strategy_sell_execute(strategy_id=strategy.pk, reason="SELL")

    strategy.refresh_from_db()
    assert strategy.status == Strategy.Status.RUNNING and strategy.position == Strategy.Position.EXITING
    assert "S5" not in codes(strategy)

    a_while_ago = timezone.now() - timedelta(seconds=30)
    Strategy.objects.filter(pk=strategy.pk).update(updated_at=a_while_ago)
    Order.objects.filter(strategy=strategy).update(updated_at=a_while_ago)
    orders_settle_interrupted()

    strategy.refresh_from_db()
    timeline = codes(strategy)
    assert (strategy.status, strategy.position) == ("EXITED", "SOLD")
    assert timeline.count("S5") == 1 and timeline.count("L1") == 1
    assert timeline.index("S5") < timeline.index("L1")
    assert [o.status for o in orders(strategy)] == [Order.Status.COMPLETE]


@pytest.mark.django_db
def test_an_order_adopted_by_its_tag_records_its_placement(make_strategy):
    strategy = make_strategy(position="BOUGHT")
    order = order_create(strategy=strategy, reason=Order.Reason.SELL)
    assert order.tag is not None
    request = OrderRequest(exchange="NSE", symbol="INFY", side=Side.SELL, quantity=1, tag=order.tag)
    broker_order_id = PaperAdapter(strategy.broker_account).place_order(request)
    Order.objects.filter(pk=order.pk).update(updated_at=timezone.now() - timedelta(seconds=30))

    orders_settle_interrupted()

    order.refresh_from_db()
    placement = EventLog.objects.filter(order=order, code="L2").order_by("id").first()
    assert order.attempts == 1 and order.broker_order_id == broker_order_id
    assert placement is not None and placement.payload["response"]["broker_order_id"] == broker_order_id
    order_codes = list(EventLog.objects.filter(order=order).order_by("id").values_list("code", flat=True))
    assert order_codes.index("L2") < order_codes.index("B3")


@pytest.mark.django_db(transaction=True)
def test_an_adoption_and_its_placement_commit_together(make_strategy):
    strategy = make_strategy(position="BOUGHT")
    order = order_create(strategy=strategy, reason=Order.Reason.SELL)
    assert order.tag is not None
    request = OrderRequest(exchange="NSE", symbol="INFY", side=Side.SELL, quantity=1, tag=order.tag)
    PaperAdapter(strategy.broker_account).place_order(request)
    Order.objects.filter(pk=order.pk).update(updated_at=timezone.now() - timedelta(seconds=30))

    with event_write_fails("B3"), pytest.raises(DatabaseError):
        orders_settle_interrupted()

    order.refresh_from_db()
    assert order.status in Order.LIVE and order.attempts == 0 and not order.broker_order_id
    assert not EventLog.objects.filter(order=order, code__in=("L2", "B3")).exists()


@pytest.mark.django_db
def test_a_stop_that_fired_is_not_armed_again_by_recovery(make_strategy):
    declare_queues()
    strategy = make_strategy(position="BOUGHT")  # stop at 1524.80
    runtime_rebuild()
    assert strategy.pk in stoploss_armed(instrument=INFY)
    tick(1520.0)
    assert stoploss_tasks() == [strategy.pk]

    runtime_rebuild()
    tick(1519.0)

    assert strategy.pk not in stoploss_armed(instrument=INFY)
    assert stoploss_tasks() == [strategy.pk]
    assert codes(strategy).count("M2") == 1


@pytest.mark.django_db
def test_a_fired_stop_whose_task_was_lost_is_exited_once_by_recovery(make_strategy, settings):
    declare_queues()
    strategy = make_strategy(position="BOUGHT")
    runtime_rebuild()
    tick(1520.0)
    EventLog.objects.filter(strategy=strategy, code="M2").update(
        created_at=timezone.now() - timedelta(seconds=settings.LOST_TASK_AFTER_SECONDS + 1)
    )
    get_redis().flushdb()  # the queued stop-loss task goes with it

    system_recover(trigger=Trigger.REDIS_FLUSH)
    system_recover(trigger=Trigger.COMMAND)

    strategy.refresh_from_db()
    timeline = codes(strategy)
    assert (strategy.status, strategy.position) == ("EXITED", "EXITED_BY_SL")
    assert [(o.reason, o.status) for o in orders(strategy)] == [("STOPLOSS", Order.Status.COMPLETE)]
    assert timeline.count("M2") == 1 and timeline.count("E3") == 1
    assert strategy.pk not in stoploss_armed(instrument=INFY)


@pytest.mark.django_db
def test_nothing_is_executed_on_a_strategy_after_its_exit(make_strategy):
    strategy = make_strategy(position="BOUGHT")
    strategy_stoploss_execute(strategy_id=strategy.pk)
    timeline = codes(strategy)
    assert timeline[-2:] == ["S5", "L1"]

    strategy_stoploss_execute(strategy_id=strategy.pk)  # a duplicate delivery, or a re-fired stop
    strategy_sell_execute(strategy_id=strategy.pk, reason="SELL")  # the SELL time, late

    assert codes(strategy) == timeline
    assert len(orders(strategy)) == 1


@pytest.mark.django_db
def test_an_exit_whose_follower_died_is_confirmed_without_waiting_for_its_lock(
    make_strategy, kite_account, kite_sim, sim_account, monkeypatch, settings
):
    monkeypatch.setattr(exits, "task_send", lambda *args, **kwargs: None)  # the follower dies before it starts
    strategy = make_strategy(account=kite_account, position="BOUGHT")
    order = strategy_stoploss_execute(strategy_id=strategy.pk, hand_off=True)
    assert order is not None and order.status == Order.Status.PENDING
    wait_until(lambda: [o["status"] for o in kite_sim.orders(sim_account.api_key)] == ["COMPLETE"], timeout=10)
    untouched = timedelta(seconds=settings.EXIT_CONFIRM_AFTER_SECONDS + 0.5)  # not yet abandoned as an order
    assert untouched.total_seconds() < settings.ORDER_SETTLE_AFTER_SECONDS
    Order.objects.filter(pk=order.pk).update(updated_at=timezone.now() - untouched)
    lock_key = redis_keys.lock_state(strategy.pk)
    orders_settle_interrupted()  # its lock was handed over just now: a follower on its way
    assert Order.objects.get(pk=order.pk).status == Order.Status.PENDING

    unrenewed = settings.EXECUTION_LOCK_SECONDS - untouched.total_seconds()
    get_redis().pexpire(lock_key, int(unrenewed * 1000))  # unrenewed as long: its follower is gone
    assert get_redis().pttl(lock_key) > 5000  # though the lock has seconds to live yet
    orders_settle_interrupted()

    strategy.refresh_from_db()
    order.refresh_from_db()
    timeline = codes(strategy)
    assert (strategy.status, strategy.position) == ("EXITED", "EXITED_BY_SL")
    assert order.status == Order.Status.COMPLETE and order.attempts == 1
    assert timeline.index("B3") < timeline.index("E5") < timeline.index("S5") < timeline.index("L1")
    assert Alert.objects.filter(kind="exit_confirmed_late", key=f"order:{order.pk}").count() == 1
