"""Intents a dead worker left live are settled from the database by their tag: adopted
if the broker has them, else placed again under a new tag (an exit always, a BUY while
still valid) or failed."""

from datetime import timedelta

import pytest
from django.utils import timezone

from brokers.adapters.base import OrderRequest, Side
from brokers.adapters.paper import PaperAdapter
from execution import tasks
from execution.models import Order
from execution.recovery.settlement import orders_settle_interrupted
from execution.services import locks, safety
from execution.services.orders import order_create
from monitoring.models import EventLog
from strategies.models import Strategy
from strategies.stoploss_index import stoploss_armed
from tests.execution.helpers import orders, paper_book

pytestmark = pytest.mark.django_db


def _interrupted(strategy, reason, *, placed_at_broker):
    """As a worker that died after committing the intent (and maybe after sending it)."""
    order = order_create(strategy=strategy, reason=reason)
    if placed_at_broker:
        side = Side.BUY if reason == Order.Reason.BUY else Side.SELL
        assert order.tag is not None
        request = OrderRequest(exchange="NSE", symbol="INFY", side=side, quantity=1, tag=order.tag)
        PaperAdapter(strategy.broker_account).place_order(request)
    Order.objects.filter(pk=order.pk).update(updated_at=timezone.now() - timedelta(seconds=10))
    return order


def test_a_buy_the_broker_has_is_adopted_and_the_position_bought(make_strategy):
    strategy = make_strategy(position="BUYING")
    order = _interrupted(strategy, Order.Reason.BUY, placed_at_broker=True)

    assert orders_settle_interrupted() == 1

    order.refresh_from_db()
    strategy.refresh_from_db()
    assert order.status == Order.Status.COMPLETE and order.broker_order_id
    assert strategy.position == "BOUGHT" and strategy.entry_price == order.fill_price
    assert len(paper_book(strategy)) == 1


def test_a_buy_the_broker_never_had_past_its_valid_time_fails_and_ends_the_strategy(make_strategy):
    strategy = make_strategy(position="BUYING")
    order = _interrupted(strategy, Order.Reason.BUY, placed_at_broker=False)
    Order.objects.filter(pk=order.pk).update(valid_until=timezone.now() - timedelta(seconds=1))

    orders_settle_interrupted()

    order.refresh_from_db()
    strategy.refresh_from_db()
    assert order.status == Order.Status.FAILED and paper_book(strategy) == []
    assert (strategy.status, strategy.position, strategy.exit_reason) == ("EXITED", "NONE", "REJECTED")


def test_a_buy_the_broker_never_had_is_placed_again_under_a_new_tag_while_still_valid(make_strategy):
    strategy = make_strategy(position="BUYING")
    lost = _interrupted(strategy, Order.Reason.BUY, placed_at_broker=False)
    Order.objects.filter(pk=lost.pk).update(valid_until=timezone.now() + timedelta(seconds=60))

    assert orders_settle_interrupted() == 1

    lost.refresh_from_db()
    strategy.refresh_from_db()
    replacement = Order.objects.get(retry_of=lost)
    assert lost.status == Order.Status.FAILED and lost.watch_until is not None
    assert replacement.status == Order.Status.COMPLETE and replacement.tag != lost.tag
    assert [o.tag for o in paper_book(strategy)] == [replacement.tag]
    assert strategy.position == "BOUGHT" and strategy.entry_price == replacement.fill_price
    assert EventLog.objects.filter(strategy=strategy, code="E4", order=replacement).exists()


def test_a_lost_exit_is_placed_again_under_a_new_tag(make_strategy):
    strategy = make_strategy(position="EXITING", exit_reason="STOPLOSS")
    lost = _interrupted(strategy, Order.Reason.STOPLOSS, placed_at_broker=False)

    tasks.settle_orders_task.apply()

    first, replacement = orders(strategy)
    assert first.pk == lost.pk and first.status == Order.Status.FAILED
    assert replacement.status == Order.Status.COMPLETE and replacement.tag != lost.tag
    assert [o.tag for o in paper_book(strategy)] == [replacement.tag]
    strategy.refresh_from_db()
    assert (strategy.status, strategy.position) == ("EXITED", "EXITED_BY_SL")


def test_an_order_whose_worker_holds_the_lock_is_left_alone(make_strategy):
    strategy = make_strategy(position="BUYING")
    order = _interrupted(strategy, Order.Reason.BUY, placed_at_broker=True)
    locks.lock_acquire(strategy_id=strategy.pk)

    assert orders_settle_interrupted() == 0

    order.refresh_from_db()
    assert order.status == Order.Status.PENDING


def test_a_fresh_order_is_left_to_its_worker(make_strategy):
    strategy = make_strategy(position="BUYING")
    order = order_create(strategy=strategy, reason=Order.Reason.BUY)

    assert orders_settle_interrupted() == 0

    order.refresh_from_db()
    assert order.status == Order.Status.PENDING


def test_a_held_position_whose_stop_trigger_was_consumed_is_rearmed(make_strategy):
    strategy = make_strategy(position="BOUGHT")
    Strategy.objects.filter(pk=strategy.pk).update(updated_at=timezone.now() - timedelta(seconds=10))

    orders_settle_interrupted()

    assert stoploss_armed(instrument="NSE:INFY") == {strategy.pk: strategy.stop_trigger_price}


def test_a_filled_buy_whose_position_never_moved_is_bought(make_strategy):
    strategy = make_strategy(position="BUYING")
    order = _interrupted(strategy, Order.Reason.BUY, placed_at_broker=True)
    orders_settle_interrupted()  # adopted and bought
    Strategy.objects.filter(pk=strategy.pk).update(
        position="BUYING", updated_at=timezone.now() - timedelta(seconds=10)
    )  # as if the worker died after recording the fill

    orders_settle_interrupted()

    strategy.refresh_from_db()
    order.refresh_from_db()
    assert strategy.position == "BOUGHT" and order.status == Order.Status.COMPLETE


def test_a_fired_sell_whose_task_was_lost_is_run(make_strategy):
    strategy = make_strategy(position="BOUGHT")
    Strategy.objects.filter(pk=strategy.pk).update(sell_fired_at=timezone.now() - timedelta(minutes=5))

    orders_settle_interrupted()

    strategy.refresh_from_db()
    assert (strategy.status, strategy.position, strategy.exit_reason) == ("EXITED", "SOLD", "SELL")
    assert [o.side for o in paper_book(strategy)] == ["SELL"]


def test_a_recently_fired_sell_is_left_to_its_task(make_strategy):
    strategy = make_strategy(position="BOUGHT")
    Strategy.objects.filter(pk=strategy.pk).update(sell_fired_at=timezone.now() - timedelta(seconds=5))

    orders_settle_interrupted()

    strategy.refresh_from_db()
    assert strategy.position == "BOUGHT" and paper_book(strategy) == []


def test_a_fired_buy_whose_task_died_before_its_claim_is_run_once(make_strategy, settings):
    settings.LOST_TASK_AFTER_SECONDS = 5
    strategy = make_strategy()
    Strategy.objects.filter(pk=strategy.pk).update(buy_fired_at=timezone.now() - timedelta(seconds=6))

    orders_settle_interrupted()
    orders_settle_interrupted()
    tasks.execute_buy_task.apply((strategy.pk,))  # the original delivery, late: refused by the claim

    strategy.refresh_from_db()
    assert strategy.position == "BOUGHT"
    assert [(o.reason, o.status) for o in orders(strategy)] == [("BUY", "COMPLETE")]
    assert [o.side for o in paper_book(strategy)] == ["BUY"]


def test_a_fired_buy_past_its_grace_is_not_run(make_strategy, settings):
    settings.LOST_TASK_AFTER_SECONDS = 5
    strategy = make_strategy()
    past = timezone.now() - timedelta(seconds=settings.BUY_GRACE_SECONDS + 1)
    Strategy.objects.filter(pk=strategy.pk).update(buy_fire_at=past, buy_fired_at=past)

    orders_settle_interrupted()

    assert orders(strategy) == [] and paper_book(strategy) == []


def test_a_recently_fired_buy_is_left_to_its_task(make_strategy, settings):
    settings.LOST_TASK_AFTER_SECONDS = 5
    strategy = make_strategy()
    Strategy.objects.filter(pk=strategy.pk).update(buy_fired_at=timezone.now() - timedelta(seconds=1))

    orders_settle_interrupted()

    assert orders(strategy) == [] and paper_book(strategy) == []


def test_a_fired_buy_is_not_run_while_entries_are_halted(make_strategy, settings):
    settings.LOST_TASK_AFTER_SECONDS = 5
    strategy = make_strategy()
    Strategy.objects.filter(pk=strategy.pk).update(buy_fired_at=timezone.now() - timedelta(seconds=6))
    safety.entries_halt(reason="operator")

    orders_settle_interrupted()

    assert orders(strategy) == [] and paper_book(strategy) == []
