"""The protective stop at Kite (the simulator over real HTTP, its order book the judge): it rests
as an SL-M once the BUY fills, the SELL converts it (one SELL at Kite), and when the broker's
own trigger sold the position while nothing of ours ran, recovery ends the strategy by it."""

import time
from decimal import Decimal

import pytest

from brokers.kite_sim import KiteSimulator, SimAccount
from execution.recovery.settlement import orders_settle_interrupted
from execution.services import strategy_buy_execute, strategy_sell_execute
from strategies.stoploss_index import stoploss_armed
from tests.execution.helpers import codes, orders
from tests.waiting import wait_until

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("protective_on")]


def book(kite_sim: KiteSimulator, sim_account: SimAccount) -> list[tuple[str, str, str, str]]:
    return [
        (o["transaction_type"], o["tag"], o["order_type"], o["status"]) for o in kite_sim.orders(sim_account.api_key)
    ]


def test_a_filled_buy_rests_an_sl_m_at_kite(make_strategy, kite_account, kite_sim, sim_account):
    strategy = make_strategy(account=kite_account)

    buy = strategy_buy_execute(strategy_id=strategy.pk)

    assert buy is not None
    _, stop = orders(strategy)
    wait_until(lambda: book(kite_sim, sim_account)[-1][3] == "TRIGGER PENDING", timeout=5)  # Kite's stages
    assert book(kite_sim, sim_account) == [
        ("BUY", buy.tag, "MARKET", "COMPLETE"),
        ("SELL", stop.tag, "SL-M", "TRIGGER PENDING"),
    ]
    [at_kite] = [o for o in kite_sim.orders(sim_account.api_key) if o["tag"] == stop.tag]
    assert Decimal(str(at_kite["trigger_price"])) == stop.trigger_price
    assert "P1" in codes(strategy)


def test_the_sell_at_kite_is_the_converted_protective_order(make_strategy, kite_account, kite_sim, sim_account):
    strategy = make_strategy(account=kite_account)
    buy = strategy_buy_execute(strategy_id=strategy.pk)

    sell = strategy_sell_execute(strategy_id=strategy.pk, reason="SELL")

    assert buy is not None and sell is not None and sell.protective
    assert book(kite_sim, sim_account) == [
        ("BUY", buy.tag, "MARKET", "COMPLETE"),
        ("SELL", sell.tag, "MARKET", "COMPLETE"),
    ]
    strategy.refresh_from_db()
    assert (strategy.status, strategy.position, strategy.exit_reason) == ("EXITED", "SOLD", "SELL")


def test_after_an_outage_recovery_finds_the_brokers_stop_filled_and_places_nothing(
    make_strategy, kite_account, kite_sim, sim_account
):
    strategy = make_strategy(account=kite_account)
    strategy_buy_execute(strategy_id=strategy.pk)
    strategy.refresh_from_db()
    _, stop = orders(strategy)
    # Nothing of ours runs while the price falls through the stop: the broker's order exits.
    assert stop.trigger_price is not None
    kite_sim.set_price("NSE", "INFY", stop.trigger_price * Decimal("0.97"))
    wait_until(lambda: book(kite_sim, sim_account)[-1][3] == "COMPLETE", timeout=10)
    time.sleep(0.6)  # past PROTECTIVE_POLL_SECONDS since the order was last touched

    orders_settle_interrupted(older_than=0)

    strategy.refresh_from_db()
    assert (strategy.status, strategy.position, strategy.exit_reason) == ("EXITED", "EXITED_BY_SL", "STOPLOSS")
    assert [(o.side, o.reason, o.status) for o in orders(strategy)] == [
        ("BUY", "BUY", "COMPLETE"),
        ("SELL", "STOPLOSS", "COMPLETE"),
    ]
    assert [row[0] for row in book(kite_sim, sim_account)] == ["BUY", "SELL"]
    assert stoploss_armed(instrument="NSE:INFY") == {}
    timeline = codes(strategy)
    assert timeline.index("P1") < timeline.index("P3") < timeline.index("S5")


def test_an_unanswered_conversion_is_read_back_and_followed_as_the_exit(
    make_strategy, kite_account, kite_sim, sim_account
):
    strategy = make_strategy(account=kite_account)
    buy = strategy_buy_execute(strategy_id=strategy.pk)
    kite_sim.set_fault("drop_response", endpoint="modify_order", api_key=sim_account.api_key)

    sell = strategy_sell_execute(strategy_id=strategy.pk, reason="SELL")

    assert buy is not None and sell is not None
    assert book(kite_sim, sim_account) == [
        ("BUY", buy.tag, "MARKET", "COMPLETE"),
        ("SELL", sell.tag, "MARKET", "COMPLETE"),
    ]
    strategy.refresh_from_db()
    assert (strategy.status, strategy.position, strategy.exit_reason) == ("EXITED", "SOLD", "SELL")


def test_a_refused_conversion_at_kite_is_cancelled_and_confirmed_before_the_new_sell(
    make_strategy, kite_account, kite_sim, sim_account
):
    strategy = make_strategy(account=kite_account)
    buy = strategy_buy_execute(strategy_id=strategy.pk)
    wait_until(lambda: book(kite_sim, sim_account)[-1][3] == "TRIGGER PENDING", timeout=5)
    kite_sim.set_fault(
        "error",
        endpoint="modify_order",
        api_key=sim_account.api_key,
        status=400,
        error_type="OrderException",
        message="Maximum allowed order modifications exceeded.",
    )

    strategy_sell_execute(strategy_id=strategy.pk, reason="SELL")

    assert buy is not None
    stop, sell = [o for o in orders(strategy) if o.side == "SELL"]
    assert book(kite_sim, sim_account) == [
        ("BUY", buy.tag, "MARKET", "COMPLETE"),
        ("SELL", stop.tag, "SL-M", "CANCELLED"),
        ("SELL", sell.tag, "MARKET", "COMPLETE"),
    ]
    strategy.refresh_from_db()
    assert (strategy.status, strategy.position, strategy.exit_reason) == ("EXITED", "SOLD", "SELL")


def test_a_conversion_refused_while_kite_processes_the_stop_is_tried_again_not_replaced(
    make_strategy, kite_account, kite_sim, sim_account
):
    strategy = make_strategy(account=kite_account)
    buy = strategy_buy_execute(strategy_id=strategy.pk)
    wait_until(lambda: book(kite_sim, sim_account)[-1][3] == "TRIGGER PENDING", timeout=5)
    # Refused as busy while every read shows it resting: the refusal, not the read, says try again.
    kite_sim.set_fault(
        "error",
        endpoint="modify_order",
        api_key=sim_account.api_key,
        times=3,
        status=400,
        error_type="OrderException",
        message="Order cannot be modified as it is being processed. Try later.",
    )

    sell = strategy_sell_execute(strategy_id=strategy.pk, reason="SELL")

    assert buy is not None and sell is not None and sell.protective
    assert book(kite_sim, sim_account) == [
        ("BUY", buy.tag, "MARKET", "COMPLETE"),
        ("SELL", sell.tag, "MARKET", "COMPLETE"),
    ]
    strategy.refresh_from_db()
    assert (strategy.status, strategy.position, strategy.exit_reason) == ("EXITED", "SOLD", "SELL")
