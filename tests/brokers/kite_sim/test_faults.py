"""Each injected fault as the official client experiences it, and what the
simulator's book (the judge) says really happened."""

import pytest
import requests
from kiteconnect import KiteConnect
from kiteconnect import exceptions as kite_exceptions

from brokers.kite_sim import Fault, FaultKind
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

# Kite allows 10 reads a second an account: the tests poll well under it.
POLL = 0.2


def test_dropped_response_leaves_the_order_placed_without_an_answer(kite_sim, sim_account, kite):
    kite_sim.set_fault("drop_response", api_key=sim_account.api_key)

    with pytest.raises(requests.exceptions.ConnectionError):
        kite.place_order(**ORDER, tag="dropped1")

    [order] = kite_sim.orders(sim_account.api_key)
    assert order["tag"] == "dropped1"
    wait_until(lambda: kite_sim.orders(sim_account.api_key)[0]["status"] == "COMPLETE")
    assert kite.place_order(**ORDER)  # one-shot: the next request is answered


def test_rate_limit_is_a_429_network_exception_and_places_nothing(kite_sim, sim_account, kite):
    kite_sim.set_fault("rate_limit", api_key=sim_account.api_key)

    with pytest.raises(kite_exceptions.NetworkException) as raised:
        kite.place_order(**ORDER)

    assert raised.value.code == 429
    assert str(raised.value) == "Too many requests"
    assert kite_sim.orders(sim_account.api_key) == []


@pytest.mark.parametrize(
    ("status", "exception"),
    [
        (500, kite_exceptions.GeneralException),
        (502, kite_exceptions.DataException),
        (503, kite_exceptions.NetworkException),
        (504, kite_exceptions.NetworkException),
    ],
)
def test_server_errors_carry_kites_error_type_for_their_status(kite_sim, sim_account, kite, status, exception):
    kite_sim.set_fault("server_error", status=status, api_key=sim_account.api_key)

    with pytest.raises(exception) as raised:
        kite.place_order(**ORDER)

    assert raised.value.code == status
    assert kite_sim.orders(sim_account.api_key) == []


def test_token_expired_fault_fails_n_requests_then_recovers(kite_sim, sim_account, kite):
    kite_sim.set_fault("token_expired", times=2, endpoint="orders", api_key=sim_account.api_key)

    for _ in range(2):
        with pytest.raises(kite_exceptions.TokenException) as raised:
            kite.orders()
        assert raised.value.code == 403

    assert kite.orders() == []


def test_an_expired_token_needs_a_new_login(kite_sim, sim_account, kite):
    kite_sim.expire_token(sim_account.api_key)

    with pytest.raises(kite_exceptions.TokenException):
        kite.profile()

    kite.generate_session(kite_sim.issue_request_token(sim_account.api_key), api_secret=sim_account.api_secret)
    assert kite.access_token != sim_account.access_token
    assert kite.profile()["user_id"] == sim_account.user_id


def test_margin_fault_accepts_the_order_then_rejects_it_for_insufficient_funds(kite_sim, sim_account, kite):
    kite_sim.set_fault("margin", api_key=sim_account.api_key)

    order_id = kite.place_order(**ORDER)

    wait_until(lambda: kite.order_history(order_id)[-1]["status"] == "REJECTED", interval=POLL)
    order = kite.order_history(order_id)[-1]
    assert order["status_message"].startswith("Insufficient funds. Required margin is")
    assert kite.trades() == []


def test_reject_fault_rejects_with_the_given_status_message(kite_sim, sim_account, kite):
    kite_sim.set_fault("reject", message="RMS:Blocked for trading", api_key=sim_account.api_key)

    order_id = kite.place_order(**ORDER)

    wait_until(lambda: kite.order_history(order_id)[-1]["status"] == "REJECTED", interval=POLL)
    assert kite.order_history(order_id)[-1]["status_message"] == "RMS:Blocked for trading"


def test_error_fault_answers_any_kite_error_at_placement(kite_sim, sim_account, kite):
    kite_sim.set_fault(
        Fault(
            kind=FaultKind.ERROR,
            status=400,
            error_type="MarginException",
            message="Insufficient margin",
            api_key=sim_account.api_key,
        )
    )

    # The official client has no MarginException class: it falls back to GeneralException.
    with pytest.raises(kite_exceptions.GeneralException) as raised:
        kite.place_order(**ORDER)

    assert raised.value.code == 400
    assert kite_sim.orders(sim_account.api_key) == []


def test_delay_fault_times_the_client_out_while_the_order_is_still_placed(kite_sim, sim_account):
    client = KiteConnect(
        sim_account.api_key, access_token=sim_account.access_token, root=kite_sim.api_root, timeout=0.3
    )
    kite_sim.set_fault("delay", seconds=0.8, api_key=sim_account.api_key)

    with pytest.raises(requests.exceptions.Timeout):
        client.place_order(**ORDER)

    wait_until(lambda: len(kite_sim.orders(sim_account.api_key)) == 1)


def test_faults_for_one_account_leave_the_others_alone(kite_sim, sim_account, kite):
    other = kite_sim.create_account()
    kite_sim.set_fault("rate_limit", times=None, api_key=other.api_key)

    assert kite.place_order(**ORDER)
    with pytest.raises(kite_exceptions.NetworkException):
        KiteConnect(other.api_key, access_token=other.access_token, root=kite_sim.api_root).orders()


def test_faults_until_cleared(kite_sim, sim_account, kite):
    kite_sim.set_fault("server_error", times=None, endpoint="positions", api_key=sim_account.api_key)
    for _ in range(3):
        with pytest.raises(kite_exceptions.NetworkException):
            kite.positions()

    kite_sim.clear_faults()

    assert kite.positions() == {"net": [], "day": []}


def test_admin_endpoints_arm_faults_move_prices_and_show_the_book(kite_sim, sim_account, kite):
    admin = f"{kite_sim.api_root}/_sim"
    armed = requests.post(
        f"{admin}/faults", json={"kind": "rate_limit", "api_key": sim_account.api_key, "times": 1}, timeout=5
    )
    assert armed.status_code == 201
    assert requests.get(f"{admin}/faults", timeout=5).json()["data"][0]["kind"] == "rate_limit"
    with pytest.raises(kite_exceptions.NetworkException):
        kite.place_order(**ORDER)

    moved = requests.post(f"{admin}/price", json={"exchange": "NSE", "symbol": "INFY", "price": 1555.5}, timeout=5)
    order_id = kite.place_order(**ORDER)
    wait_until(lambda: kite.order_history(order_id)[-1]["status"] == "COMPLETE", interval=POLL)
    book = requests.get(f"{admin}/orders", params={"api_key": sim_account.api_key}, timeout=5).json()["data"]

    assert moved.json()["data"]["last_price"] == "1555.5"
    assert [o["order_id"] for o in book] == [order_id]
    assert requests.delete(f"{admin}/faults", timeout=5).status_code == 200


def test_admin_creates_accounts_and_rejects_unknown_faults(kite_sim):
    admin = f"{kite_sim.api_root}/_sim"

    created = requests.post(f"{admin}/accounts", json={"opening_balance": 5000}, timeout=5).json()["data"]
    bad = requests.post(f"{admin}/faults", json={"kind": "meteor_strike"}, timeout=5)

    client = KiteConnect(created["api_key"], access_token=created["access_token"], root=kite_sim.api_root)
    assert client.margins("equity")["available"]["opening_balance"] == 5000
    assert bad.status_code == 400


def test_margin_exception_fault_refuses_the_order_at_placement(kite_sim, sim_account, kite):
    kite_sim.set_fault("margin_exception", api_key=sim_account.api_key)

    with pytest.raises(kite_exceptions.GeneralException) as raised:  # no MarginException class in the client
        kite.place_order(**ORDER)

    assert raised.value.code == 400
    assert kite_sim.orders(sim_account.api_key) == []


def test_a_partial_fill_fills_part_then_the_exchange_cancels_the_rest(kite_sim, sim_account, kite):
    kite_sim.set_fault("partial_fill", quantity=3, api_key=sim_account.api_key)

    order_id = kite.place_order(**{**ORDER, "quantity": 5})

    wait_until(lambda: kite.order_history(order_id)[-1]["status"] == "CANCELLED", interval=POLL)
    final = kite.order_history(order_id)[-1]
    assert (final["filled_quantity"], final["cancelled_quantity"], final["pending_quantity"]) == (3, 2, 0)
    assert final["average_price"] > 0
    assert [t["quantity"] for t in kite.order_trades(order_id)] == [3]
    [position] = kite.positions()["net"]
    assert position["quantity"] == 3
    assert kite.place_order(**ORDER) and wait_until(
        lambda: kite.orders()[-1]["status"] == "COMPLETE", interval=POLL
    )  # one-shot


def test_a_partial_fill_of_nothing_stays_open_until_its_rest_is_cancelled(kite_sim, sim_account, kite):
    kite_sim.set_fault("partial_fill", quantity=0, seconds=0.5, api_key=sim_account.api_key)

    order_id = kite.place_order(**ORDER)

    wait_until(lambda: kite.order_history(order_id)[-1]["status"] == "OPEN", interval=POLL)
    assert kite.order_history(order_id)[-1]["filled_quantity"] == 0
    wait_until(lambda: kite.order_history(order_id)[-1]["status"] == "CANCELLED", interval=POLL)
    assert kite.order_trades(order_id) == []
