"""Partial fills at the Kite simulator (its partial_fill fault): a BUY that filled part
and had the rest cancelled holds what filled, and its stop and exit are for that; an
exit that filled part has the rest exited at once. The simulator's book and its net
position are the judge."""

import pytest

from execution.models import Order
from execution.services import strategy_buy_execute, strategy_sell_execute, strategy_stoploss_execute
from execution.services.claims import position_held_quantity
from monitoring.models import EventLog
from strategies.stoploss_index import stoploss_armed
from tests.execution.helpers import orders

pytestmark = pytest.mark.django_db


def book(kite_sim, sim_account):
    return [
        (o["transaction_type"], o["quantity"], o["filled_quantity"], o["status"])
        for o in kite_sim.orders(sim_account.api_key)
    ]


def net(kite_sim, sim_account):
    return sum(row["quantity"] for row in kite_sim.book.positions(sim_account.api_key))


def test_a_partly_filled_buy_holds_what_filled_and_exits_only_that(make_strategy, kite_account, kite_sim, sim_account):
    strategy = make_strategy(account=kite_account, quantity=5)
    kite_sim.set_fault("partial_fill", quantity=2, api_key=sim_account.api_key)

    buy = strategy_buy_execute(strategy_id=strategy.pk)

    assert buy is not None and (buy.status, buy.quantity, buy.filled_quantity) == (Order.Status.CANCELLED, 5, 2)
    strategy.refresh_from_db()
    assert strategy.position == "BOUGHT" and strategy.entry_price == buy.fill_price
    assert stoploss_armed(instrument="NSE:INFY") == {strategy.pk: strategy.stop_trigger_price}
    assert position_held_quantity(strategy) == 2
    assert EventLog.objects.filter(strategy=strategy, code="L4", payload__alert="partial_fill").count() == 1

    sell = strategy_sell_execute(strategy_id=strategy.pk, reason="SELL")

    assert sell is not None and (sell.quantity, sell.filled_quantity, sell.status) == (2, 2, Order.Status.COMPLETE)
    assert book(kite_sim, sim_account) == [("BUY", 5, 2, "CANCELLED"), ("SELL", 2, 2, "COMPLETE")]
    assert net(kite_sim, sim_account) == 0
    strategy.refresh_from_db()
    assert (strategy.status, strategy.position) == ("EXITED", "SOLD")


def test_a_buy_cancelled_with_nothing_filled_ends_the_strategy(make_strategy, kite_account, kite_sim, sim_account):
    strategy = make_strategy(account=kite_account, quantity=5)
    kite_sim.set_fault("partial_fill", quantity=0, api_key=sim_account.api_key)

    buy = strategy_buy_execute(strategy_id=strategy.pk)

    assert buy is not None and (buy.status, buy.filled_quantity) == (Order.Status.CANCELLED, 0)
    strategy.refresh_from_db()
    assert (strategy.status, strategy.position, strategy.exit_reason) == ("EXITED", "NONE", "REJECTED")
    assert net(kite_sim, sim_account) == 0


def test_a_partly_filled_stoploss_exit_has_the_rest_exited_at_once(make_strategy, kite_account, kite_sim, sim_account):
    strategy = make_strategy(account=kite_account, quantity=5)
    strategy_buy_execute(strategy_id=strategy.pk)
    kite_sim.set_fault("partial_fill", quantity=3, api_key=sim_account.api_key)

    strategy_stoploss_execute(strategy_id=strategy.pk)

    _, first, rest = orders(strategy)
    assert (first.reason, first.quantity, first.filled_quantity, first.status) == ("STOPLOSS", 5, 3, "CANCELLED")
    assert (rest.reason, rest.quantity, rest.filled_quantity, rest.status) == ("STOPLOSS", 2, 2, "COMPLETE")
    assert rest.retry_of_id == first.pk
    assert book(kite_sim, sim_account) == [
        ("BUY", 5, 5, "COMPLETE"),
        ("SELL", 5, 3, "CANCELLED"),
        ("SELL", 2, 2, "COMPLETE"),
    ]
    assert net(kite_sim, sim_account) == 0
    strategy.refresh_from_db()
    assert (strategy.status, strategy.position) == ("EXITED", "EXITED_BY_SL")


def test_a_buy_still_partly_open_at_its_follow_deadline_has_its_rest_cancelled(
    make_strategy, kite_account, kite_sim, sim_account, settings
):
    settings.ORDER_FOLLOW_SECONDS = 1.0
    strategy = make_strategy(account=kite_account, quantity=5)
    kite_sim.set_fault("partial_fill", quantity=2, seconds=600, api_key=sim_account.api_key)  # the rest would wait

    buy = strategy_buy_execute(strategy_id=strategy.pk)

    assert buy is not None and (buy.status, buy.filled_quantity) == (Order.Status.CANCELLED, 2)
    assert book(kite_sim, sim_account) == [("BUY", 5, 2, "CANCELLED")]
    strategy.refresh_from_db()
    assert strategy.position == "BOUGHT" and position_held_quantity(strategy) == 2
    assert stoploss_armed(instrument="NSE:INFY") == {strategy.pk: strategy.stop_trigger_price}


def test_an_exit_still_open_at_its_follow_deadline_is_not_cancelled(
    make_strategy, kite_account, kite_sim, sim_account, settings
):
    settings.ORDER_FOLLOW_SECONDS = 0.5
    strategy = make_strategy(account=kite_account, position="BOUGHT")
    kite_sim.set_fault("partial_fill", quantity=0, seconds=600, api_key=sim_account.api_key)

    exit_order = strategy_stoploss_execute(strategy_id=strategy.pk)

    assert exit_order is not None and exit_order.status == Order.Status.PLACED
    assert book(kite_sim, sim_account) == [("SELL", 1, 0, "OPEN")]
