"""Kite's published limits (``brokers.kite_limits``) as the simulator enforces them on the
official client: request rates answered 429 with Kite's body, orders a minute and a day,
the circuit band and the stop-loss trigger rules, each of which a test can turn off."""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from kiteconnect import KiteConnect
from kiteconnect import exceptions as kite_exceptions

from brokers.kite_limits import KiteLimits
from brokers.kite_sim import KiteSimulator
from brokers.kite_sim.errors import KiteError
from brokers.kite_sim.limits import Limits
from tests.waiting import wait_until

ORDER = {
    "variety": "regular",
    "exchange": "NSE",
    "tradingsymbol": "INFY",
    "transaction_type": "BUY",
    "quantity": 1,
    "product": "MIS",
    "order_type": "MARKET",
}


def place(kite, **overrides):
    return kite.place_order(**{**ORDER, **overrides})


def last_status(kite, order_id):
    return kite.order_history(order_id)[-1]


def test_a_burst_of_orders_past_ten_a_second_meets_429s_and_the_book_holds_exactly_the_accepted(
    kite_sim, sim_account, kite
):
    # given a client that sends 25 orders as fast as it can (no more than two clock seconds)
    def attempt(n):
        try:
            return place(kite, tag=f"burst{n}")
        except kite_exceptions.NetworkException as refused:
            assert refused.code == 429
            assert str(refused) == "Too many requests"
            return None

    # when they all go at once
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(attempt, range(25)))

    # then at most ten a clock second were taken, the rest refused, and the book holds exactly the taken ones
    accepted = [order_id for order_id in answers if order_id]
    assert 10 <= len(accepted) <= 20
    book = kite_sim.orders(sim_account.api_key)
    assert sorted(order["order_id"] for order in book) == sorted(accepted)


def test_quotes_past_one_a_second_meet_a_429(kite_sim, kite):
    outcomes: list[object] = []
    for _ in range(3):  # three calls span at most two clock seconds
        try:
            kite.quote("NSE:INFY")
            outcomes.append("ok")
        except kite_exceptions.NetworkException as refused:
            outcomes.append(refused.code)

    assert outcomes.count("ok") <= 2
    assert 429 in outcomes


def test_a_test_can_turn_the_rate_limits_off_over_the_admin_endpoint(kite_sim, kite):
    response = requests.post(f"{kite_sim.api_root}/_sim/limits", data=json.dumps({"rate": False}), timeout=5)
    try:
        assert response.json()["data"]["rate"] is False

        quotes = [kite.ltp("NSE:INFY") for _ in range(5)]

        assert all(quote["NSE:INFY"]["last_price"] > 0 for quote in quotes)
    finally:
        kite_sim.set_limits(rate=True)


def test_orders_past_the_minutes_cap_are_429_until_the_next_minute():
    limits = Limits(KiteLimits(orders_per_second=100, orders_per_minute=3))
    minute = 1_800_000_000 - 1_800_000_000 % 60
    for second in range(3):
        limits.take("key", "place_order", now=minute + second)

    with pytest.raises(KiteError) as refused:
        limits.take("key", "place_order", now=minute + 59.9)

    assert (refused.value.status, refused.value.error_type) == (429, "NetworkException")
    limits.take("key", "place_order", now=minute + 60)  # a new minute
    limits.take("other", "place_order", now=minute + 59.9)  # another account's own budget


def test_orders_past_the_days_cap_are_refused_with_an_order_exception():
    limits = Limits(KiteLimits(orders_per_second=100, orders_per_minute=100, orders_per_day=2))
    noon = 1_800_000_000
    limits.take("key", "place_order", now=noon)
    limits.take("key", "place_order", now=noon + 120)

    with pytest.raises(KiteError) as refused:
        limits.take("key", "place_order", now=noon + 240)

    assert (refused.value.status, refused.value.error_type) == (400, "OrderException")
    limits.take("key", "orders", now=noon + 240)  # reads are not orders


def test_a_refused_request_is_not_counted():
    limits = Limits(KiteLimits(quote_per_second=1))
    limits.take("key", "quote", now=100.0)
    for _ in range(3):
        with pytest.raises(KiteError):
            limits.take("key", "quote", now=100.5)

    limits.take("key", "quote", now=101.0)


def test_a_limit_price_beyond_the_circuit_is_accepted_then_rejected_by_the_rms(kite_sim, kite):
    kite_sim.set_price("NSE", "INFY", 1540)

    order_id = place(kite, order_type="LIMIT", price=2310)  # 1.5 x; the upper circuit is 1.2 x the close

    wait_until(lambda: last_status(kite, order_id)["status"] == "REJECTED", interval=0.2)
    message = last_status(kite, order_id)["status_message"]
    assert message.startswith("RMS:Rule: Check circuit limit")
    assert "1848.24" in message
    assert kite.trades() == []


def test_the_quotes_circuit_limits_are_the_ones_enforced(kite):
    quote = kite.quote("NSE:INFY")["NSE:INFY"]

    assert (quote["lower_circuit_limit"], quote["upper_circuit_limit"]) == (1232.16, 1848.24)


@pytest.mark.parametrize(
    ("side", "order_type", "trigger", "price", "message"),
    [
        ("BUY", "SL-M", 1500, None, "stoploss buy orders should be higher than the last traded price"),
        ("SELL", "SL-M", 1600, None, "stoploss sell orders should be lower than the last traded price"),
        ("BUY", "SL", 1600, 1590, "Trigger price can't be higher than price"),
        ("SELL", "SL", 1500, 1510, "Trigger price can't be lesser than price"),
        ("SELL", "SL-M", 1200, None, "cannot be below the lower circuit price"),
    ],
)
def test_a_stop_whose_trigger_is_on_the_wrong_side_is_an_input_exception_and_not_placed(
    kite_sim, sim_account, kite, side, order_type, trigger, price, message
):
    kite_sim.set_price("NSE", "INFY", 1540)
    extra = {} if price is None else {"price": price}

    with pytest.raises(kite_exceptions.InputException) as refused:
        place(kite, transaction_type=side, order_type=order_type, trigger_price=trigger, **extra)

    assert message in str(refused.value)
    assert kite_sim.orders(sim_account.api_key) == []


def test_with_the_trigger_rule_off_a_wrong_side_stop_triggers_at_once(kite_sim, kite):
    kite_sim.set_price("NSE", "INFY", 1540)
    kite_sim.set_limits(stop_triggers=False)
    try:
        order_id = place(kite, order_type="SL-M", trigger_price=1500)

        wait_until(lambda: last_status(kite, order_id)["status"] == "COMPLETE", interval=0.2)
    finally:
        kite_sim.set_limits(stop_triggers=True)


def test_a_modification_is_recorded_as_kite_records_it(kite_sim, kite):
    kite_sim.set_price("NSE", "INFY", 1540)
    order_id = place(kite, order_type="LIMIT", price=1400)
    wait_until(lambda: last_status(kite, order_id)["status"] == "OPEN", interval=0.2)

    kite.modify_order("regular", order_id, price=1401)

    statuses = [entry["status"] for entry in kite.order_history(order_id)]
    assert statuses[-5:] == ["OPEN", "MODIFY VALIDATION PENDING", "MODIFY PENDING", "MODIFIED", "OPEN"]
    assert kite.order_history(order_id)[-1]["price"] == 1401


def test_a_modification_is_refused_while_the_order_is_still_being_processed():
    # a simulator whose orders take their time through each status
    with KiteSimulator(stage_delay=30) as slow:
        client = KiteConnect(slow.demo_account.api_key, root=slow.api_root)
        client.set_access_token(slow.demo_account.access_token)
        order_id = place(client, order_type="LIMIT", price=1400)

        with pytest.raises(kite_exceptions.OrderException) as refused:
            client.modify_order("regular", order_id, price=1401)

    assert "being processed" in str(refused.value)


def test_depth_levels_never_show_more_orders_than_shares(kite_sim):
    for symbol in ("INFY", "RELIANCE", "ITC", "WIPRO"):
        instrument = kite_sim.market.instrument("NSE", symbol)
        for _ in range(200):
            quote = kite_sim.market.quote(instrument)
            assert all(level.orders <= level.quantity for level in (*quote.bids, *quote.asks))
