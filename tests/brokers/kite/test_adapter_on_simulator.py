"""The Kite adapter against the Kite simulator over real HTTP and WebSocket: every
fault the simulator can inject, surfaced as the broker error the pipeline acts on,
the login flow, and the tick stream through a feed disconnect."""

import logging
import threading
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from brokers.adapters.base import BrokerOrderStatus, Credentials, OrderRequest, Side, Tick
from brokers.adapters.kite import KiteAdapter
from brokers.exceptions import (
    AmbiguousOutcome,
    BrokerAuthError,
    BrokerUnavailable,
    OrderRejected,
    RateLimited,
)
from brokers.kite_sim import KiteSimulator, SimAccount
from tests.brokers.contract import wait_final
from tests.brokers.kite.servers import closed_port
from tests.brokers.kite_sim_fixtures import kite_sim, sim_account
from tests.waiting import wait_until

__all__ = ["kite_sim", "sim_account"]


def buy(tag: str, quantity: int = 1) -> OrderRequest:
    return OrderRequest("NSE", "INFY", side=Side.BUY, quantity=quantity, tag=tag)


def adapter_for(sim: KiteSimulator, account: SimAccount, timeout: float = 5.0) -> KiteAdapter:
    credentials = Credentials(account.api_key, account.api_secret, account.access_token)
    return KiteAdapter(credentials, api_root=sim.api_root, ws_root=sim.ws_root, timeout=timeout)


@pytest.fixture
def adapter(kite_sim: KiteSimulator, sim_account: SimAccount) -> KiteAdapter:
    return adapter_for(kite_sim, sim_account)


def test_a_dropped_response_on_place_order_is_ambiguous_and_the_order_is_found_by_its_tag(
    kite_sim, sim_account, adapter
):
    kite_sim.set_fault("drop_response", api_key=sim_account.api_key)

    with pytest.raises(AmbiguousOutcome) as unknown:
        adapter.place_order(buy("dropped1"))

    assert not unknown.value.permanent
    [found] = adapter.orders_by_tag("dropped1")
    assert [o["order_id"] for o in kite_sim.orders(sim_account.api_key)] == [found.broker_order_id]
    assert wait_final(adapter, found.broker_order_id).status is BrokerOrderStatus.COMPLETE


def test_a_slow_answer_to_place_order_is_ambiguous_and_the_order_exists(kite_sim, sim_account, adapter):
    kite_sim.set_fault("delay", endpoint="place_order", seconds=1.0, api_key=sim_account.api_key)

    with pytest.raises(AmbiguousOutcome):
        adapter_for(kite_sim, sim_account, timeout=0.3).place_order(buy("slow1"))

    wait_until(lambda: adapter.orders_by_tag("slow1"), timeout=5, interval=0.2)  # under 10 reads a second
    assert len(adapter.orders_by_tag("slow1")) == 1


def test_a_slow_answer_to_a_read_is_unavailable(kite_sim, sim_account):
    kite_sim.set_fault("delay", endpoint="positions", seconds=1.0, api_key=sim_account.api_key)

    with pytest.raises(BrokerUnavailable) as unavailable:
        adapter_for(kite_sim, sim_account, timeout=0.3).positions()

    assert type(unavailable.value) is BrokerUnavailable


def test_rate_limiting_is_retryable_and_nothing_was_placed(kite_sim, sim_account, adapter):
    kite_sim.set_fault("rate_limit", api_key=sim_account.api_key)

    with pytest.raises(RateLimited) as limited:
        adapter.place_order(buy("limited1"))

    assert not limited.value.permanent
    assert adapter.orders_by_tag("limited1") == []


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_5xx_on_place_order_is_ambiguous_and_on_a_read_unavailable(kite_sim, sim_account, adapter, status):
    kite_sim.set_fault("server_error", status=status, endpoint="place_order", api_key=sim_account.api_key)
    kite_sim.set_fault("server_error", status=status, endpoint="orders", api_key=sim_account.api_key)

    with pytest.raises(AmbiguousOutcome):
        adapter.place_order(buy("fivexx1"))
    with pytest.raises(BrokerUnavailable) as unavailable:
        adapter.orders_by_tag("fivexx1")

    assert type(unavailable.value) is BrokerUnavailable
    assert adapter.orders_by_tag("fivexx1") == []  # settled by looking it up, as the pipeline does


def test_an_expired_token_is_a_permanent_auth_error(kite_sim, sim_account, adapter):
    kite_sim.set_fault("token_expired", api_key=sim_account.api_key)

    with pytest.raises(BrokerAuthError) as refused:
        adapter.place_order(buy("expired1"))

    assert refused.value.permanent
    assert refused.value.broker_error_type == "TokenException"
    assert sim_account.access_token not in str(refused.value)


def test_a_token_expired_at_the_broker_refuses_every_call(kite_sim, sim_account, adapter):
    kite_sim.expire_token(sim_account.api_key)

    with pytest.raises(BrokerAuthError):
        adapter.validate_credentials()
    with pytest.raises(BrokerAuthError):
        adapter.positions()


@pytest.mark.parametrize(
    ("error_type", "status", "on_write", "on_read"),
    [
        ("TokenException", 403, BrokerAuthError, BrokerAuthError),
        ("PermissionException", 403, BrokerAuthError, BrokerAuthError),
        ("UserException", 403, OrderRejected, BrokerAuthError),
        ("OrderException", 400, OrderRejected, BrokerUnavailable),
        ("InputException", 400, OrderRejected, BrokerUnavailable),
        ("MarginException", 400, OrderRejected, BrokerUnavailable),
        ("HoldingException", 400, OrderRejected, BrokerUnavailable),
        ("NetworkException", 503, AmbiguousOutcome, BrokerUnavailable),
        ("DataException", 502, AmbiguousOutcome, BrokerUnavailable),
        ("GeneralException", 500, AmbiguousOutcome, BrokerUnavailable),
        ("GeneralException", 400, BrokerUnavailable, BrokerUnavailable),
    ],
)
def test_each_error_type_from_the_simulator_maps_to_one_broker_error(
    kite_sim, sim_account, adapter, error_type, status, on_write, on_read
):
    options = {"error_type": error_type, "status": status, "message": "Broker refuses", "api_key": sim_account.api_key}
    kite_sim.set_fault("error", endpoint="place_order", **options)
    kite_sim.set_fault("error", endpoint="positions", **options)

    with pytest.raises(on_write) as on_place:
        adapter.place_order(buy("errtype1"))
    with pytest.raises(on_read) as on_positions:
        adapter.positions()

    assert on_place.value.broker_error_type == on_positions.value.broker_error_type == error_type
    assert on_place.value.message == "Broker refuses"
    assert type(on_place.value) is on_write and type(on_positions.value) is on_read


def test_an_order_rejected_for_margin_after_acceptance_is_final_rejected(kite_sim, sim_account, adapter):
    kite_sim.set_fault("margin", api_key=sim_account.api_key)

    order = wait_final(adapter, adapter.place_order(buy("margin1")))

    assert order.status is BrokerOrderStatus.REJECTED
    assert order.raw_status == "REJECTED"
    assert "Insufficient funds" in order.status_message


def test_an_rms_rejection_keeps_the_brokers_message(kite_sim, sim_account, adapter):
    kite_sim.set_fault("reject", message="RMS:Rule: Check circuit limit", api_key=sim_account.api_key)

    order = wait_final(adapter, adapter.place_order(buy("rms1")))

    assert (order.status, order.status_message) == (BrokerOrderStatus.REJECTED, "RMS:Rule: Check circuit limit")


def test_a_closed_port_is_unavailable_not_ambiguous(kite_sim, sim_account):
    credentials = Credentials(sim_account.api_key, sim_account.api_secret, sim_account.access_token)
    adapter = KiteAdapter(credentials, api_root=f"http://127.0.0.1:{closed_port()}", ws_root=kite_sim.ws_root)

    with pytest.raises(BrokerUnavailable) as unavailable:
        adapter.place_order(buy("refused1"))

    assert type(unavailable.value) is BrokerUnavailable
    assert kite_sim.orders(sim_account.api_key) == []


def test_login_flow_yields_a_working_access_token(kite_sim, sim_account):
    logged_out = KiteAdapter(
        Credentials(sim_account.api_key, sim_account.api_secret), api_root=kite_sim.api_root, ws_root=kite_sim.ws_root
    )
    redirect = requests.get(
        logged_out.login_url(f"{kite_sim.api_root}/connect/login"), allow_redirects=False, timeout=5
    )
    request_token = parse_qs(urlsplit(redirect.headers["Location"]).query)["request_token"][0]

    access_token = logged_out.exchange_request_token(request_token, sim_account.api_secret)

    logged_in = KiteAdapter(
        Credentials(sim_account.api_key, sim_account.api_secret, access_token),
        api_root=kite_sim.api_root,
        ws_root=kite_sim.ws_root,
    )
    assert logged_in.validate_credentials().broker_user_id == sim_account.user_id


def test_a_wrong_secret_fails_the_login_checksum(kite_sim, sim_account, adapter):
    request_token = kite_sim.issue_request_token(sim_account.api_key)

    with pytest.raises(BrokerAuthError) as refused:
        adapter.exchange_request_token(request_token, "not-the-secret")

    assert "not-the-secret" not in str(refused.value)


def test_the_tick_stream_resumes_with_its_subscriptions_after_a_feed_disconnect(kite_sim, adapter):
    batches: list[list[Tick]] = []
    events: list[str] = []
    arrived = threading.Event()

    class Events:
        def on_connected(self) -> None:
            events.append("connected")

        def on_disconnected(self, reason: str) -> None:
            events.append("disconnected")

        def on_error(self, reason: str) -> None:
            events.append("error")

    def on_ticks(batch: list[Tick]) -> None:
        batches.append(batch)
        arrived.set()

    stream = adapter.tick_stream(on_ticks, Events())
    stream.subscribe([("NSE", "INFY"), ("NSE", "TCS")])
    stream.start()
    try:
        assert arrived.wait(10)
        kite_sim.set_fault("feed_disconnect")
        wait_until(lambda: events.count("connected") >= 2, timeout=10, message=lambda: str(events))
        assert events[:3] == ["connected", "disconnected", "connected"]
        kite_sim.set_price("NSE", "TCS", 4321.5)
        # The simulator's random walk carries on from the new price.
        wait_until(
            lambda: any(t.symbol == "TCS" and abs(t.price - 4321.5) < 40 for b in batches for t in b),
            timeout=10,
            message="no tick at the new price after reconnecting",
        )
    finally:
        stream.stop()

    assert not stream.connected
    ticks = [t for b in batches for t in b]
    assert {(t.exchange, t.symbol) for t in ticks} == {("NSE", "INFY"), ("NSE", "TCS")}
    assert all(t.exchange_ts > 1_700_000_000 for t in ticks)


def test_the_tick_stream_reports_a_refused_token_and_keeps_trying(kite_sim, sim_account):
    errors: list[str] = []

    class Events:
        def on_connected(self) -> None:
            errors.append("connected?!")

        def on_disconnected(self, reason: str) -> None:
            pass

        def on_error(self, reason: str) -> None:
            errors.append(reason)

    bad = KiteAdapter(
        Credentials(sim_account.api_key, "", "wrong-access-token"), api_root=kite_sim.api_root, ws_root=kite_sim.ws_root
    )
    stream = bad.tick_stream(lambda batch: None, Events())
    stream.start()
    try:
        wait_until(lambda: len(errors) >= 2, timeout=10, message=lambda: str(errors))
    finally:
        stream.stop()

    assert len(errors) >= 2 and "connected?!" not in errors
    assert all("wrong-access-token" not in reason for reason in errors)


def test_no_secret_reaches_the_logs_even_at_debug(kite_sim, sim_account, adapter, caplog):
    caplog.set_level(logging.DEBUG)
    kite_sim.set_fault("drop_response", api_key=sim_account.api_key)
    arrived = threading.Event()

    with pytest.raises(AmbiguousOutcome):
        adapter.place_order(buy("logs1"))
    adapter.orders_by_tag("logs1")
    kite_sim.set_fault("token_expired", api_key=sim_account.api_key)
    with pytest.raises(BrokerAuthError):
        adapter.positions()
    adapter.exchange_request_token(kite_sim.issue_request_token(sim_account.api_key), sim_account.api_secret)
    stream = adapter.tick_stream(lambda batch: arrived.set())
    stream.subscribe([("NSE", "INFY")])
    stream.start()
    try:
        assert arrived.wait(10)
    finally:
        stream.stop()

    logged = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    assert logged
    assert sim_account.access_token not in logged
    assert sim_account.api_secret not in logged
