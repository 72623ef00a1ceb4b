"""The Kite adapter over real HTTP against canned Kite responses: request shape, the
response envelope, every documented error_type, and transport failures on real sockets."""

import hashlib
from datetime import datetime
from decimal import Decimal
from urllib.parse import parse_qs

import pytest

from brokers.adapters.base import (
    BrokerAdapter,
    BrokerOrderStatus,
    Credentials,
    OrderRequest,
    OrderType,
    Side,
)
from brokers.adapters.kite import EXCHANGE_TZ, KiteAdapter, normalise_status
from brokers.exceptions import (
    AmbiguousOutcome,
    BrokerAuthError,
    BrokerUnavailable,
    OrderBusy,
    OrderRejected,
    RateLimited,
)
from tests.brokers.kite.servers import canned_kite, closed_port, silent_server

CREDENTIALS = Credentials(api_key="kitekey1", api_secret="s3cr3t-api-secret", access_token="acc3ss-t0ken-xyz")
BUY_INFY = OrderRequest("NSE", "INFY", side=Side.BUY, quantity=2, tag="abc123")


def make_adapter(root: str, timeout: float = 2.0) -> KiteAdapter:
    return KiteAdapter(CREDENTIALS, api_root=root, ws_root="ws://127.0.0.1:1", timeout=timeout)


@pytest.fixture
def kite():
    with canned_kite() as canned:
        yield canned


def order_entry(**overrides):
    entry = {
        "order_id": "250101000000001",
        "exchange_order_id": None,
        "status": "OPEN",
        "status_message": None,
        "order_timestamp": "2026-11-24 10:15:30",
        "exchange_timestamp": None,
        "exchange_update_timestamp": None,
        "variety": "regular",
        "exchange": "NSE",
        "tradingsymbol": "INFY",
        "instrument_token": 408065,
        "order_type": "MARKET",
        "transaction_type": "BUY",
        "validity": "DAY",
        "product": "MIS",
        "quantity": 2,
        "price": 0,
        "average_price": 0,
        "filled_quantity": 0,
        "pending_quantity": 2,
        "tag": "abc123",
        "tags": ["abc123"],
    }
    return entry | overrides


def test_the_adapter_implements_the_broker_interface():
    assert isinstance(make_adapter("http://127.0.0.1:1"), BrokerAdapter)


# -- request shape -----------------------------------------------------------


def test_place_order_sends_kite_headers_and_a_form_encoded_body(kite):
    kite.answer(200, {"status": "success", "data": {"order_id": "151220000000000"}})

    order_id = make_adapter(kite.root).place_order(
        OrderRequest(
            "NSE", "INFY", side=Side.BUY, quantity=3, tag="t1", order_type=OrderType.LIMIT, price=Decimal("1500.05")
        )
    )

    assert order_id == "151220000000000"
    [sent] = kite.received
    assert (sent.method, sent.path) == ("POST", "/orders/regular")
    assert sent.headers["X-Kite-Version"] == "3"
    assert sent.headers["Authorization"] == "token kitekey1:acc3ss-t0ken-xyz"
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(sent.body.decode()) == {
        "exchange": ["NSE"],
        "tradingsymbol": ["INFY"],
        "transaction_type": ["BUY"],
        "quantity": ["3"],
        "product": ["MIS"],
        "order_type": ["LIMIT"],
        "validity": ["DAY"],
        "price": ["1500.05"],
        "tag": ["t1"],
    }


def test_a_netrc_entry_for_the_host_does_not_replace_the_session_token(kite, tmp_path, monkeypatch):
    # requests, left to read the environment, would send this as Basic auth instead.
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login someone password not-the-token\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    kite.answer(200, {"status": "success", "data": {"order_id": "151220000000001"}})

    make_adapter(kite.root).place_order(BUY_INFY)

    assert [r.headers["Authorization"] for r in kite.received] == ["token kitekey1:acc3ss-t0ken-xyz"]


def test_a_proxy_set_in_the_environment_still_carries_the_requests(kite, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", kite.root)  # the canned server plays the proxy
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    kite.answer(200, {"status": "success", "data": {"order_id": "151220000000002"}})

    make_adapter("http://kite.example.invalid").place_order(BUY_INFY)

    [sent] = kite.received
    assert sent.path == "http://kite.example.invalid/orders/regular"  # a proxy's absolute form
    assert sent.headers["Authorization"] == "token kitekey1:acc3ss-t0ken-xyz"


@pytest.mark.parametrize("tag", ["", "has space", "x" * 21, "dash-ed", "ünïcode"])
def test_an_invalid_tag_is_refused_before_anything_is_sent(kite, tag):
    with pytest.raises(OrderRejected) as refused:
        make_adapter(kite.root).place_order(OrderRequest("NSE", "INFY", side=Side.BUY, quantity=1, tag=tag))

    assert refused.value.permanent
    assert kite.received == []


def test_a_twenty_character_alphanumeric_tag_is_accepted(kite):
    kite.answer(200, {"status": "success", "data": {"order_id": "1"}})

    make_adapter(kite.root).place_order(OrderRequest("NSE", "INFY", side=Side.BUY, quantity=1, tag="A1" * 10))

    assert parse_qs(kite.received[0].body.decode())["tag"] == ["A1" * 10]


def test_cancel_deletes_the_regular_order(kite):
    kite.answer(200, {"status": "success", "data": {"order_id": "77"}})

    make_adapter(kite.root).cancel_order("77")

    assert [(r.method, r.path) for r in kite.received] == [("DELETE", "/orders/regular/77")]


def test_exchange_request_token_sends_the_sha256_checksum_and_returns_the_access_token(kite):
    kite.answer(
        200, {"status": "success", "data": {"user_id": "AB1234", "access_token": "new-token", "login_time": ""}}
    )

    token = make_adapter(kite.root).exchange_request_token("req-tok", "s3cr3t-api-secret")

    assert token == "new-token"
    [sent] = kite.received
    assert (sent.method, sent.path) == ("POST", "/session/token")
    assert "Authorization" not in sent.headers
    assert parse_qs(sent.body.decode()) == {
        "api_key": ["kitekey1"],
        "request_token": ["req-tok"],
        "checksum": [hashlib.sha256(b"kitekey1req-toks3cr3t-api-secret").hexdigest()],
    }


def test_a_refused_request_token_is_an_auth_error_without_the_secret_in_it(kite):
    kite.error(403, "TokenException", "Token is invalid or has expired: s3cr3t-api-secret")

    with pytest.raises(BrokerAuthError) as refused:
        make_adapter(kite.root).exchange_request_token("req-tok", "s3cr3t-api-secret")

    assert "s3cr3t-api-secret" not in str(refused.value)


def test_a_login_whose_input_kite_refuses_is_an_auth_error_not_an_outage(kite):
    # Found by the stateful fuzzing: an unknown api_key at /session/token answered 503.
    kite.error(400, "InputException", "Invalid `api_key`.")

    with pytest.raises(BrokerAuthError):
        make_adapter(kite.root).exchange_request_token("req-tok", "s3cr3t-api-secret")


def test_login_url_names_the_api_key_and_version():
    url = make_adapter("http://127.0.0.1:1").login_url("https://kite.zerodha.com/connect/login")

    assert url == "https://kite.zerodha.com/connect/login?api_key=kitekey1&v=3"


# -- responses ---------------------------------------------------------------


def test_get_order_reads_the_last_entry_of_the_order_history(kite):
    kite.answer(
        200,
        {
            "status": "success",
            "data": [
                order_entry(status="PUT ORDER REQ RECEIVED"),
                order_entry(status="OPEN"),
                order_entry(
                    status="COMPLETE",
                    filled_quantity=2,
                    pending_quantity=0,
                    average_price=1540.35,
                    exchange_update_timestamp="2026-11-24 10:15:31",
                ),
            ],
        },
    )

    order = make_adapter(kite.root).get_order("250101000000001")

    assert kite.received[0].path == "/orders/250101000000001"
    assert order.status is BrokerOrderStatus.COMPLETE
    assert order.raw_status == "COMPLETE"
    assert order.average_price == Decimal("1540.35")
    assert isinstance(order.average_price, Decimal)
    assert (order.filled_quantity, order.quantity, order.side, order.tag) == (2, 2, Side.BUY, "abc123")
    assert order.placed_at == datetime(2026, 11, 24, 10, 15, 30, tzinfo=EXCHANGE_TZ)
    assert order.updated_at == datetime(2026, 11, 24, 10, 15, 31, tzinfo=EXCHANGE_TZ)


def test_an_unfilled_order_has_no_average_price(kite):
    kite.answer(200, {"status": "success", "data": [order_entry(status="TRIGGER PENDING")]})

    order = make_adapter(kite.root).get_order("250101000000001")

    assert (order.status, order.raw_status, order.average_price) == (BrokerOrderStatus.OPEN, "TRIGGER PENDING", None)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("COMPLETE", BrokerOrderStatus.COMPLETE),
        ("REJECTED", BrokerOrderStatus.REJECTED),
        ("CANCELLED", BrokerOrderStatus.CANCELLED),
        ("OPEN", BrokerOrderStatus.OPEN),
        ("TRIGGER PENDING", BrokerOrderStatus.OPEN),
        ("VALIDATION PENDING", BrokerOrderStatus.OPEN),
        ("PUT ORDER REQ RECEIVED", BrokerOrderStatus.OPEN),
        ("MODIFY PENDING", BrokerOrderStatus.OPEN),
        ("OPEN PENDING", BrokerOrderStatus.OPEN),
        ("SOMETHING NEW", BrokerOrderStatus.OPEN),
        ("", BrokerOrderStatus.OPEN),
    ],
)
def test_only_kites_three_final_statuses_end_an_order(raw, status):
    assert normalise_status(raw) is status


def test_orders_by_tag_filters_the_order_book(kite):
    book = [
        order_entry(order_id="1", tag="abc123"),
        order_entry(order_id="2", tag="other", tags=["other"]),
        order_entry(order_id="3", tag=None, tags=["x", "abc123"]),
    ]
    kite.answer(200, {"status": "success", "data": book})

    found = make_adapter(kite.root).orders_by_tag("abc123")

    assert kite.received[0].path == "/orders"
    assert [o.broker_order_id for o in found] == ["1", "3"]


def test_positions_are_the_net_intraday_positions_with_decimal_prices(kite):
    kite.answer(
        200,
        {
            "status": "success",
            "data": {
                "net": [
                    {
                        "exchange": "NSE",
                        "tradingsymbol": "INFY",
                        "product": "MIS",
                        "quantity": 3,
                        "average_price": 1540.1,
                    },
                    {
                        "exchange": "NSE",
                        "tradingsymbol": "TCS",
                        "product": "MIS",
                        "quantity": -1,
                        "average_price": 3125,
                    },
                    {"exchange": "NSE", "tradingsymbol": "SBIN", "product": "MIS", "quantity": 0, "average_price": 0},
                ],
                "day": [],
            },
        },
    )

    positions = make_adapter(kite.root).positions()

    assert [(p.symbol, p.quantity, p.average_price) for p in positions] == [
        ("INFY", 3, Decimal("1540.1")),
        ("TCS", -1, Decimal("3125")),
    ]


def test_last_price_reads_quote_ltp_as_a_decimal(kite):
    kite.answer(200, {"status": "success", "data": {"NSE:INFY": {"instrument_token": 408065, "last_price": 1540.2}}})

    price = make_adapter(kite.root).last_price("NSE", "INFY")

    assert price == Decimal("1540.2")
    assert kite.received[0].path == "/quote/ltp?i=NSE%3AINFY"


def test_an_unknown_instrument_has_no_last_price(kite):
    kite.answer(200, {"status": "success", "data": {}})

    with pytest.raises(OrderRejected):
        make_adapter(kite.root).last_price("NSE", "NOSUCH")


def test_instruments_are_parsed_from_kites_csv_dump(kite):
    csv_text = (
        "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,lot_size,"
        "instrument_type,segment,exchange\n"
        "408065,1594,INFY,INFOSYS,1540.2,,0,0.05,1,EQ,NSE,NSE\n"
        "738561,2885,RELIANCE,RELIANCE INDUSTRIES,1420.5,,0,0.1,1,EQ,NSE,NSE\n"
    )
    kite.answer(200, csv_text.encode(), content_type="text/csv")

    instruments = make_adapter(kite.root).instruments("NSE")

    assert kite.received[0].path == "/instruments/NSE"
    assert [(i.instrument_token, i.symbol, i.tick_size, i.reference_price) for i in instruments] == [
        (408065, "INFY", Decimal("0.05"), Decimal("1540.2")),
        (738561, "RELIANCE", Decimal("0.1"), Decimal("1420.5")),
    ]


def test_validate_credentials_returns_the_profile(kite):
    kite.answer(200, {"status": "success", "data": {"user_id": "AB1234", "user_name": "A Trader", "email": "a@x.in"}})

    profile = make_adapter(kite.root).validate_credentials()

    assert (profile.broker_user_id, profile.user_name, profile.email) == ("AB1234", "A Trader", "a@x.in")


# -- error_type mapping ------------------------------------------------------

ERROR_TYPES = [
    # error_type, HTTP status, on a read, on an order write
    ("TokenException", 403, BrokerAuthError, BrokerAuthError),
    ("PermissionException", 403, BrokerAuthError, BrokerAuthError),
    ("UserException", 400, BrokerAuthError, OrderRejected),
    ("OrderException", 400, BrokerUnavailable, OrderRejected),
    ("InputException", 400, BrokerUnavailable, OrderRejected),
    ("MarginException", 400, BrokerUnavailable, OrderRejected),
    ("HoldingException", 400, BrokerUnavailable, OrderRejected),
    ("NetworkException", 503, BrokerUnavailable, AmbiguousOutcome),
    ("DataException", 502, BrokerUnavailable, AmbiguousOutcome),
    ("GeneralException", 500, BrokerUnavailable, AmbiguousOutcome),
    ("GeneralException", 400, BrokerUnavailable, BrokerUnavailable),
    ("SomeFutureException", 500, BrokerUnavailable, AmbiguousOutcome),
]


@pytest.mark.parametrize(("error_type", "status", "on_read", "on_write"), ERROR_TYPES)
def test_each_error_type_maps_to_one_broker_error(kite, error_type, status, on_read, on_write):
    kite.error(status, error_type, "Insufficient funds. Required margin is 95417.84")
    adapter = make_adapter(kite.root)

    with pytest.raises(on_read) as read_error:
        adapter.positions()
    with pytest.raises(on_write) as write_error:
        adapter.place_order(BUY_INFY)

    for raised in (read_error.value, write_error.value):
        assert raised.broker_error_type == error_type
        assert "Insufficient funds" in raised.message


@pytest.mark.parametrize("error_type", ["OrderException", "InputException"])
def test_an_order_exception_on_an_order_history_poll_is_retryable_not_a_rejection(kite, error_type):
    # Kite documents OrderException for a failed fetch too: the order may well be live.
    kite.error(400, error_type, "Couldn't fetch the order history. Please try again.")

    with pytest.raises(BrokerUnavailable) as failed:
        make_adapter(kite.root).get_order("1")

    assert not isinstance(failed.value, OrderRejected)
    assert not failed.value.permanent


def test_a_change_refused_while_kite_processes_the_order_is_busy_not_a_rejection(kite):
    # Kite takes a modify only once the order rests: the same change a moment later goes through.
    kite.error(400, "OrderException", "Order cannot be modified as it is being processed. Try later.")

    with pytest.raises(OrderBusy) as busy:
        make_adapter(kite.root).modify_order("1", order_type=OrderType.MARKET)

    assert not isinstance(busy.value, OrderRejected)
    assert not busy.value.permanent
    assert busy.value.broker_error_type == "OrderException"


@pytest.mark.parametrize("error_type", ["NetworkException", "GeneralException", ""])
def test_http_429_is_rate_limited_for_reads_and_writes(kite, error_type):
    kite.error(429, error_type, "Too many requests")
    adapter = make_adapter(kite.root)

    with pytest.raises(RateLimited):
        adapter.place_order(BUY_INFY)
    with pytest.raises(RateLimited) as limited:
        adapter.get_order("1")

    assert not limited.value.permanent


def test_a_bare_5xx_after_an_order_was_sent_is_ambiguous_but_on_a_read_unavailable(kite):
    kite.answer(502, b"<html>Bad Gateway</html>", content_type="text/html")
    adapter = make_adapter(kite.root)

    with pytest.raises(AmbiguousOutcome):
        adapter.place_order(BUY_INFY)
    with pytest.raises(AmbiguousOutcome):
        adapter.cancel_order("1")
    with pytest.raises(BrokerUnavailable) as unavailable:
        adapter.orders_by_tag("abc123")
    assert type(unavailable.value) is BrokerUnavailable


def test_a_success_without_an_order_id_is_ambiguous(kite):
    kite.answer(200, {"status": "success", "data": {}})

    with pytest.raises(AmbiguousOutcome):
        make_adapter(kite.root).place_order(BUY_INFY)


def test_a_403_without_an_envelope_is_an_auth_error(kite):
    kite.answer(403, b"Forbidden", content_type="text/plain")

    with pytest.raises(BrokerAuthError):
        make_adapter(kite.root).validate_credentials()


def test_error_messages_never_carry_the_access_token_or_secret(kite):
    kite.error(403, "TokenException", "Invalid token acc3ss-t0ken-xyz for key (s3cr3t-api-secret)")

    with pytest.raises(BrokerAuthError) as refused:
        make_adapter(kite.root).validate_credentials()

    text = f"{refused.value} {refused.value.message} {refused.value!r}"
    assert "acc3ss-t0ken-xyz" not in text
    assert "s3cr3t-api-secret" not in text


# -- transport failures on real sockets --------------------------------------


def test_connection_refused_means_the_order_was_certainly_not_placed():
    adapter = make_adapter(f"http://127.0.0.1:{closed_port()}")

    with pytest.raises(BrokerUnavailable) as refused:
        adapter.place_order(BUY_INFY)

    assert type(refused.value) is BrokerUnavailable
    assert not refused.value.permanent
    assert refused.value.__cause__ is None  # the requests error holds the Authorization header


def test_connection_refused_on_a_read_is_unavailable():
    with pytest.raises(BrokerUnavailable):
        make_adapter(f"http://127.0.0.1:{closed_port()}").positions()


def test_a_read_timeout_after_an_order_was_sent_is_ambiguous():
    with silent_server() as root, pytest.raises(AmbiguousOutcome) as unknown:
        make_adapter(root, timeout=0.3).place_order(BUY_INFY)

    assert not unknown.value.permanent
    assert "acc3ss-t0ken-xyz" not in str(unknown.value)


def test_a_read_timeout_on_a_read_is_unavailable():
    with silent_server() as root, pytest.raises(BrokerUnavailable) as unavailable:
        make_adapter(root, timeout=0.3).get_order("1")

    assert type(unavailable.value) is BrokerUnavailable


def test_an_unresolvable_host_is_unavailable():
    with pytest.raises(BrokerUnavailable) as unavailable:
        make_adapter("http://no-such-host.invalid", timeout=2).place_order(BUY_INFY)

    assert type(unavailable.value) is BrokerUnavailable


@pytest.mark.parametrize(
    "data",
    [
        [{"order_id": "1", "transaction_type": "HOLD", "status": "OPEN"}],
        [{"order_id": "1", "transaction_type": "BUY", "status": "OPEN", "average_price": "n/a"}],
        {"not": "a list"},
        [],
    ],
)
def test_a_success_in_an_unreadable_shape_is_unavailable(kite, data):
    kite.answer(200, {"status": "success", "data": data})

    with pytest.raises(BrokerUnavailable) as unavailable:
        make_adapter(kite.root).get_order("1")

    assert type(unavailable.value) is BrokerUnavailable
