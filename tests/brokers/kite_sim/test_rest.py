"""The official ``kiteconnect`` client, unchanged, against the simulator over real HTTP:
login with the checksum, profile, margins, the order lifecycle, trades, positions,
quotes and the instrument dump."""

import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from kiteconnect import KiteConnect
from kiteconnect import exceptions as kite_exceptions

from brokers.kite_sim import DEMO_ACCESS_TOKEN, DEMO_API_KEY, DEMO_API_SECRET, DEMO_USER_ID
from tests.waiting import wait_until


def login(kite_sim, api_key: str) -> str:
    response = requests.get(
        f"{kite_sim.api_root}/connect/login", params={"v": "3", "api_key": api_key}, allow_redirects=False, timeout=5
    )
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["status"] == ["success"]
    return query["request_token"][0]


def market_buy(kite, symbol="INFY", quantity=5, **extra):
    return kite.place_order(
        variety="regular",
        exchange="NSE",
        tradingsymbol=symbol,
        transaction_type=extra.pop("transaction_type", "BUY"),
        quantity=quantity,
        product=extra.pop("product", "MIS"),
        order_type=extra.pop("order_type", "MARKET"),
        **extra,
    )


def status_of(kite, order_id):
    return kite.order_history(order_id)[-1]["status"]


# Kite allows 10 reads a second an account: a client polls well under it, to leave room for its other calls.
POLL = 0.2


def wait_status(kite, order_id, status):
    wait_until(lambda: status_of(kite, order_id) == status, interval=POLL)


def test_login_page_redirects_with_a_request_token_that_generate_session_exchanges(kite_sim, sim_account):
    request_token = login(kite_sim, sim_account.api_key)
    client = KiteConnect(sim_account.api_key, root=kite_sim.api_root)

    session = client.generate_session(request_token, api_secret=sim_account.api_secret)

    assert session["user_id"] == sim_account.user_id
    assert session["access_token"] == sim_account.access_token
    assert client.profile()["user_id"] == sim_account.user_id


def test_wrong_api_secret_is_a_token_exception(kite_sim, sim_account):
    request_token = login(kite_sim, sim_account.api_key)
    client = KiteConnect(sim_account.api_key, root=kite_sim.api_root)

    with pytest.raises(kite_exceptions.TokenException) as raised:
        client.generate_session(request_token, api_secret="not-the-secret")

    assert raised.value.code == 403


def test_a_request_token_works_once(kite_sim, sim_account):
    request_token = kite_sim.issue_request_token(sim_account.api_key)
    client = KiteConnect(sim_account.api_key, root=kite_sim.api_root)
    client.generate_session(request_token, api_secret=sim_account.api_secret)

    with pytest.raises(kite_exceptions.TokenException):
        client.generate_session(request_token, api_secret=sim_account.api_secret)


def test_session_checksum_is_sha256_of_key_token_secret_over_a_form_post(kite_sim, sim_account):
    request_token = kite_sim.issue_request_token(sim_account.api_key)
    checksum = hashlib.sha256((sim_account.api_key + request_token + sim_account.api_secret).encode()).hexdigest()

    response = requests.post(
        f"{kite_sim.api_root}/session/token",
        data={"api_key": sim_account.api_key, "request_token": request_token, "checksum": checksum},
        headers={"X-Kite-Version": "3"},
        timeout=5,
    )

    assert response.status_code == 200
    assert response.json()["status"] == "success"
    assert response.json()["data"]["access_token"] == sim_account.access_token


def test_demo_account_works_with_its_published_credentials(kite_sim):
    client = KiteConnect(DEMO_API_KEY, root=kite_sim.api_root)
    client.generate_session(kite_sim.issue_request_token(DEMO_API_KEY), api_secret=DEMO_API_SECRET)

    assert client.access_token == DEMO_ACCESS_TOKEN
    assert client.profile()["user_id"] == DEMO_USER_ID


def test_invalidated_access_token_is_refused(kite_sim, sim_account, kite):
    kite.invalidate_access_token()

    with pytest.raises(kite_exceptions.TokenException):
        kite.profile()


def test_wrong_access_token_is_a_token_exception(kite_sim, sim_account):
    client = KiteConnect(sim_account.api_key, access_token="wrong", root=kite_sim.api_root)

    with pytest.raises(kite_exceptions.TokenException) as raised:
        client.orders()

    assert raised.value.code == 403


def test_missing_kite_version_header_is_an_input_exception(kite_sim, sim_account):
    response = requests.get(
        f"{kite_sim.api_root}/user/profile",
        headers={"Authorization": f"token {sim_account.api_key}:{sim_account.access_token}"},
        timeout=5,
    )

    assert response.status_code == 400
    assert response.json() == {
        "status": "error",
        "message": response.json()["message"],
        "data": None,
        "error_type": "InputException",
    }


def test_profile_and_margins(kite, sim_account):
    profile = kite.profile()
    margins = kite.margins()

    assert profile["user_name"] == sim_account.user_name
    assert profile["broker"] == "ZERODHA"
    assert margins["equity"]["available"]["opening_balance"] == 1_000_000
    assert kite.margins("equity")["enabled"] is True


def test_market_order_walks_kites_statuses_and_fills_at_the_simulated_price(kite_sim, kite):
    kite_sim.set_price("NSE", "INFY", 1500)

    order_id = market_buy(kite, quantity=5, tag="entry1")
    wait_status(kite, order_id, "COMPLETE")

    history = kite.order_history(order_id)
    assert [h["status"] for h in history] == [
        "PUT ORDER REQ RECEIVED",
        "VALIDATION PENDING",
        "OPEN PENDING",
        "OPEN",
        "COMPLETE",
    ]
    assert history[-1]["filled_quantity"] == 5
    assert history[-1]["average_price"] == pytest.approx(1500, rel=0.01)
    assert history[-1]["tag"] == "entry1"
    [order] = kite.orders()
    assert order["order_id"] == order_id
    assert order["status"] == "COMPLETE"


def test_trades_and_positions_come_from_the_fills(kite, kite_sim):
    kite_sim.set_price("NSE", "SBIN", 800)
    buy = market_buy(kite, "SBIN", quantity=10)
    wait_status(kite, buy, "COMPLETE")
    sell = market_buy(kite, "SBIN", quantity=4, transaction_type="SELL")
    wait_status(kite, sell, "COMPLETE")

    trades = kite.trades()
    [buy_trade] = kite.order_trades(buy)
    positions = kite.positions()

    assert {t["order_id"] for t in trades} == {buy, sell}
    assert buy_trade["quantity"] == 10
    assert buy_trade["transaction_type"] == "BUY"
    [net] = positions["net"]
    assert net["tradingsymbol"] == "SBIN"
    assert net["quantity"] == 6
    assert net["buy_quantity"] == 10
    assert net["sell_quantity"] == 4
    assert positions["day"][0]["quantity"] == 6


def test_limit_order_stays_open_until_the_price_crosses(kite_sim, kite):
    kite_sim.set_price("NSE", "TCS", 3100)
    order_id = market_buy(kite, "TCS", quantity=1, order_type="LIMIT", price=3000)
    wait_status(kite, order_id, "OPEN")

    kite_sim.set_price("NSE", "TCS", 2990)

    wait_status(kite, order_id, "COMPLETE")
    assert kite.order_history(order_id)[-1]["average_price"] <= 3000


def test_modify_then_cancel_an_open_limit_order(kite_sim, kite):
    kite_sim.set_price("NSE", "ITC", 410)
    order_id = market_buy(kite, "ITC", quantity=2, order_type="LIMIT", price=340)
    wait_status(kite, order_id, "OPEN")

    assert kite.modify_order("regular", order_id, price=341, quantity=3) == order_id
    assert kite.cancel_order("regular", order_id) == order_id

    history = kite.order_history(order_id)
    assert history[-1]["status"] == "CANCELLED"
    assert history[-1]["price"] == 341
    assert history[-1]["quantity"] == 3
    assert history[-1]["cancelled_quantity"] == 3
    assert "MODIFY PENDING" in [h["status"] for h in history]


def test_cancelling_a_completed_order_is_an_order_exception(kite):
    order_id = market_buy(kite, quantity=1)
    wait_status(kite, order_id, "COMPLETE")

    with pytest.raises(kite_exceptions.OrderException):
        kite.cancel_order("regular", order_id)


def test_stop_loss_market_order_waits_in_trigger_pending(kite_sim, kite):
    kite_sim.set_price("NSE", "WIPRO", 250)
    order_id = market_buy(kite, "WIPRO", quantity=1, transaction_type="SELL", order_type="SL-M", trigger_price=240)
    wait_status(kite, order_id, "TRIGGER PENDING")

    kite_sim.set_price("NSE", "WIPRO", 239)

    wait_status(kite, order_id, "COMPLETE")


@pytest.mark.parametrize(
    ("overrides", "message_fragment"),
    [
        ({"tradingsymbol": "NOSUCHSTOCK"}, "tradingsymbol"),
        ({"quantity": 0}, "quantity"),
        ({"quantity": -3}, "quantity"),
        ({"tag": "x" * 21}, "tag"),
        ({"order_type": "LIMIT"}, "price"),
        ({"order_type": "LIMIT", "price": 1500.03}, "tick size"),
    ],
)
def test_invalid_orders_are_input_exceptions(kite, overrides, message_fragment):
    params = {
        "variety": "regular",
        "exchange": "NSE",
        "tradingsymbol": "INFY",
        "transaction_type": "BUY",
        "quantity": 1,
        "product": "MIS",
        "order_type": "MARKET",
    } | overrides

    with pytest.raises(kite_exceptions.InputException) as raised:
        kite.place_order(**params)

    assert raised.value.code == 400
    assert message_fragment in str(raised.value).lower()
    assert kite.orders() == []


def test_unknown_order_id_is_a_general_exception(kite):
    with pytest.raises(kite_exceptions.GeneralException):
        kite.order_history("999999999999999")


def test_another_accounts_order_is_not_visible(kite_sim, kite):
    other = kite_sim.create_account()
    other_client = KiteConnect(other.api_key, access_token=other.access_token, root=kite_sim.api_root)
    order_id = market_buy(other_client, quantity=1)

    with pytest.raises(kite_exceptions.GeneralException):
        kite.order_history(order_id)
    assert kite.orders() == []


def test_funds_set_by_a_test_are_what_margins_answer(kite_sim, kite, sim_account):
    kite_sim.set_funds(sim_account.api_key, "2500.50")

    equity = kite.margins("equity")

    assert equity["available"]["opening_balance"] == 2500.5
    assert equity["net"] == 2500.5


def test_funds_are_set_over_the_admin_endpoint_too(kite_sim, kite, sim_account):
    response = requests.post(
        f"{kite_sim.api_root}/_sim/funds", json={"api_key": sim_account.api_key, "amount": "750"}, timeout=5
    )

    assert response.status_code == 200
    assert kite.margins("equity")["net"] == 750.0


def test_a_suspended_instrument_is_quoted_nothing_and_refused(kite_sim, kite):
    response = requests.post(f"{kite_sim.api_root}/_sim/suspend", json={"tradingsymbol": "ITC"}, timeout=5)
    assert response.status_code == 200
    try:
        assert kite.quote("NSE:ITC", "NSE:INFY").keys() == {"NSE:INFY"}
        with pytest.raises(kite_exceptions.InputException, match="suspended"):
            market_buy(kite, "ITC")
    finally:
        kite_sim.suspend("NSE", "ITC", suspended=False)


def test_insufficient_funds_rejects_the_order_after_placement(kite_sim, kite):
    kite_sim.set_price("NSE", "MARUTI", 16000)

    order_id = market_buy(kite, "MARUTI", quantity=1000, product="CNC")

    wait_status(kite, order_id, "REJECTED")
    assert kite.order_history(order_id)[-1]["status_message"].startswith("Insufficient funds.")


def test_ltp_answers_known_instruments_only(kite_sim, kite):
    kite_sim.set_price("NSE", "RELIANCE", 1400)

    ltp = kite.ltp("NSE:RELIANCE", "NSE:NOSUCH")

    assert ltp == {"NSE:RELIANCE": {"instrument_token": 738561, "last_price": 1400.0}}


# Kite's quote endpoints allow one request a second an account: one call per test (per account).
def test_ohlc_carries_the_previous_close(kite_sim, kite):
    kite_sim.set_price("NSE", "RELIANCE", 1400)

    ohlc = kite.ohlc("NSE:RELIANCE")

    assert ohlc["NSE:RELIANCE"]["ohlc"]["close"] == 1420.5


def test_quote_carries_the_last_price_and_five_depth_levels(kite_sim, kite):
    kite_sim.set_price("NSE", "RELIANCE", 1400)

    quote = kite.quote("NSE:RELIANCE")["NSE:RELIANCE"]

    assert quote["last_price"] == 1400.0
    assert len(quote["depth"]["buy"]) == len(quote["depth"]["sell"]) == 5


def test_instrument_dump_is_kites_csv(kite):
    instruments = kite.instruments("NSE")

    infy = next(i for i in instruments if i["tradingsymbol"] == "INFY")
    nifty = next(i for i in instruments if i["tradingsymbol"] == "NIFTY 50")
    assert infy["instrument_token"] == 408065
    assert infy["exchange_token"] == "1594"
    assert infy["instrument_type"] == "EQ"
    assert infy["tick_size"] == 0.1
    assert nifty["segment"] == "INDICES"
    assert len(kite.instruments()) == len(instruments)
    assert kite.instruments("BSE") == []


def test_login_page_passes_redirect_params_back(kite_sim, sim_account):
    response = requests.get(
        f"{kite_sim.api_root}/connect/login",
        params={"v": "3", "api_key": sim_account.api_key, "redirect_params": "account=42&next=home"},
        allow_redirects=False,
        timeout=5,
    )

    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["account"] == ["42"]
    assert query["next"] == ["home"]
    assert query["action"] == ["login"]


def test_login_page_refuses_an_unknown_api_key(kite_sim):
    response = requests.get(
        f"{kite_sim.api_root}/connect/login", params={"v": "3", "api_key": "nobody"}, allow_redirects=False, timeout=5
    )

    assert response.status_code == 400
    assert response.json()["error_type"] == "InputException"


def test_a_tag_with_punctuation_is_refused(kite):
    with pytest.raises(kite_exceptions.InputException):
        market_buy(kite, quantity=1, tag="bad-tag!")


def test_prices_hold_still_with_zero_volatility():
    from brokers.kite_sim import KiteSimulator

    with KiteSimulator(volatility=0.0, tick_interval=0.01) as sim:
        account = sim.create_account()
        client = KiteConnect(account.api_key, access_token=account.access_token, root=sim.api_root)
        sim.set_price("NSE", "INFY", 1500)
        order_id = market_buy(client, quantity=1, order_type="LIMIT", price=1400)
        wait_status(client, order_id, "OPEN")

        assert client.ltp("NSE:INFY")["NSE:INFY"]["last_price"] == 1500.0
