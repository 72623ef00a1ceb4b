"""The pipeline against the Kite simulator over real HTTP: the simulator's order book is
the judge. Each injected fault ends in its documented outcome with its events, and an
unanswered placement never becomes a second order."""

import threading

import pytest

from brokers.kite_sim import KiteSimulator, SimAccount
from brokers.models import BrokerAccount
from execution.models import Order
from execution.services import strategy_buy_execute, strategy_sell_execute, strategy_stoploss_execute
from tests.execution.helpers import codes, orders

pytestmark = pytest.mark.django_db


def book(kite_sim: KiteSimulator, sim_account: SimAccount) -> list[tuple[str, str, str]]:
    return [(o["transaction_type"], o["tag"], o["status"]) for o in kite_sim.orders(sim_account.api_key)]


def test_buy_then_sell_place_exactly_two_orders_at_kite(make_strategy, kite_account, kite_sim, sim_account):
    strategy = make_strategy(account=kite_account)

    buy = strategy_buy_execute(strategy_id=strategy.pk)
    sell = strategy_sell_execute(strategy_id=strategy.pk, reason="SELL")

    assert buy is not None and sell is not None
    assert book(kite_sim, sim_account) == [("BUY", buy.tag, "COMPLETE"), ("SELL", sell.tag, "COMPLETE")]
    strategy.refresh_from_db()
    assert (strategy.status, strategy.position) == ("EXITED", "SOLD")
    assert strategy.entry_price == buy.fill_price


def test_stoploss_places_one_exit_at_kite(make_strategy, kite_account, kite_sim, sim_account):
    strategy = make_strategy(account=kite_account, position="BOUGHT")

    exit_order = strategy_stoploss_execute(strategy_id=strategy.pk)
    strategy_sell_execute(strategy_id=strategy.pk, reason="SELL")

    assert exit_order is not None
    assert book(kite_sim, sim_account) == [("SELL", exit_order.tag, "COMPLETE")]
    strategy.refresh_from_db()
    assert (strategy.status, strategy.position, strategy.exit_reason) == ("EXITED", "EXITED_BY_SL", "STOPLOSS")


def test_a_dropped_response_is_found_by_its_tag_and_adopted_never_placed_twice(
    make_strategy, kite_account, kite_sim, sim_account
):
    strategy = make_strategy(account=kite_account)
    kite_sim.set_fault("drop_response", api_key=sim_account.api_key)

    order = strategy_buy_execute(strategy_id=strategy.pk)

    assert order is not None and order.status == Order.Status.COMPLETE and order.attempts == 1
    assert book(kite_sim, sim_account) == [("BUY", order.tag, "COMPLETE")]
    assert len(orders(strategy)) == 1
    assert "E4" not in codes(strategy) and {"B3", "E5"} <= set(codes(strategy))
    strategy.refresh_from_db()
    assert strategy.position == "BOUGHT"


def test_a_server_error_on_placement_is_looked_up_then_replaced_by_a_new_tag(
    make_strategy, kite_account, kite_sim, sim_account
):
    strategy = make_strategy(account=kite_account)
    kite_sim.set_fault("server_error", endpoint="place_order", api_key=sim_account.api_key)

    order = strategy_buy_execute(strategy_id=strategy.pk)

    lost, placed = orders(strategy)
    assert order is not None and order.pk == placed.pk and placed.retry_of_id == lost.pk
    assert (lost.status, placed.status) == (Order.Status.FAILED, Order.Status.COMPLETE)
    assert lost.tag != placed.tag
    assert book(kite_sim, sim_account) == [("BUY", placed.tag, "COMPLETE")]
    assert "E4" in codes(strategy)


def test_rate_limits_are_retried_with_e4_each_time(make_strategy, kite_account, kite_sim, sim_account):
    strategy = make_strategy(account=kite_account)
    kite_sim.set_fault("rate_limit", endpoint="place_order", api_key=sim_account.api_key, times=2)

    order = strategy_buy_execute(strategy_id=strategy.pk)

    assert order is not None and order.status == Order.Status.COMPLETE and order.attempts == 3
    assert book(kite_sim, sim_account) == [("BUY", order.tag, "COMPLETE")]
    assert codes(strategy).count("E4") == 2


def test_a_buy_that_stays_rate_limited_fails_at_its_deadline_and_ends_the_strategy(
    make_strategy, kite_account, kite_sim, sim_account
):
    strategy = make_strategy(account=kite_account)
    kite_sim.set_fault("rate_limit", endpoint="place_order", api_key=sim_account.api_key, times=None)

    order = strategy_buy_execute(strategy_id=strategy.pk)

    assert order is not None and order.status == Order.Status.FAILED
    assert book(kite_sim, sim_account) == []
    strategy.refresh_from_db()
    assert (strategy.status, strategy.position, strategy.exit_reason) == ("EXITED", "NONE", "REJECTED")
    assert {"E4", "B4", "L4", "E5", "S5"} <= set(codes(strategy))


def test_a_stoploss_retries_longer_than_a_buy(make_strategy, kite_account, kite_sim, sim_account, settings):
    strategy = make_strategy(account=kite_account, position="BOUGHT")
    # Longer than a BUY would wait (1 s here), within the stop-loss's 3 s.
    kite_sim.set_fault("server_error", endpoint="place_order", api_key=sim_account.api_key, times=None, status=503)
    settings.ORDER_UNKNOWN_GRACE_SECONDS = 0.2
    threading.Timer(1.5, kite_sim.clear_faults).start()

    order = strategy_stoploss_execute(strategy_id=strategy.pk)

    assert order is not None and order.status == Order.Status.COMPLETE
    assert book(kite_sim, sim_account) == [("SELL", order.tag, "COMPLETE")]
    strategy.refresh_from_db()
    assert strategy.position == "EXITED_BY_SL"


def test_an_expired_token_fails_fast_and_marks_the_account(make_strategy, kite_account, kite_sim, sim_account):
    strategy = make_strategy(account=kite_account)
    kite_sim.set_fault("token_expired", endpoint="place_order", api_key=sim_account.api_key)

    order = strategy_buy_execute(strategy_id=strategy.pk)

    assert order is not None and order.status == Order.Status.FAILED and order.attempts == 1
    assert book(kite_sim, sim_account) == []
    kite_account.refresh_from_db()
    assert kite_account.status == BrokerAccount.Status.TOKEN_EXPIRED
    strategy.refresh_from_db()
    assert (strategy.status, strategy.position, strategy.exit_reason) == ("EXITED", "NONE", "REJECTED")
    assert {"B4", "L4", "E5", "S5"} <= set(codes(strategy)) and "E4" not in codes(strategy)


def test_a_margin_shortfall_is_accepted_then_rejected_and_ends_the_strategy(
    make_strategy, kite_account, kite_sim, sim_account
):
    strategy = make_strategy(account=kite_account)
    kite_sim.set_fault("margin", api_key=sim_account.api_key)

    order = strategy_buy_execute(strategy_id=strategy.pk)

    assert order is not None and order.status == Order.Status.REJECTED
    assert "margin" in order.last_error.lower() or "funds" in order.last_error.lower()
    assert book(kite_sim, sim_account) == [("BUY", order.tag, "REJECTED")]
    strategy.refresh_from_db()
    assert (strategy.status, strategy.position, strategy.exit_reason) == ("EXITED", "NONE", "REJECTED")
    assert {"B3", "B4", "L4", "E5", "S5"} <= set(codes(strategy))


def test_stoplosses_of_one_account_reuse_the_shared_adapter_and_its_connection(
    make_strategy, kite_account, kite_sim, sim_account
):
    from brokers.adapters.registry import shared_adapter_for
    from tests.brokers.test_adapter_registry import connections_opened

    strategies = [make_strategy(account=kite_account, position="BOUGHT") for _ in range(2)]

    exits = [strategy_stoploss_execute(strategy_id=strategy.pk) for strategy in strategies]

    assert all(order is not None and order.status == Order.Status.COMPLETE for order in exits)
    adapter = shared_adapter_for(kite_account)
    # Both executions, placing and following, over one warm connection.
    assert connections_opened(adapter, kite_sim.api_root) == 1
    assert [tag for _, tag, _ in book(kite_sim, sim_account)] == [order.tag for order in exits if order]
