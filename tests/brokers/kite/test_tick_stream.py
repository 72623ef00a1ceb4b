"""KiteTickStream over a real WebSocket on loopback: connection URL and headers,
subscriptions live and remembered, one handler call per frame, text messages,
reconnect with re-subscription, and a clean stop."""

import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from brokers.adapters.base import Tick, TickStream
from brokers.adapters.kite_ticker import KiteTickStream, reconnect_delay
from brokers.exceptions import BrokerUnavailable
from brokers.instruments import load_instruments
from tests.brokers.kite.frames import HEARTBEAT, INFY, frame, full_packet, ltp_packet
from tests.brokers.kite.servers import closed_port, ticker_server
from tests.waiting import wait_until

RELIANCE = 738561
TCS = 2953217


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[Tick]] = []
        self.events: list[tuple[str, str]] = []
        self.order_updates: list[dict[str, object]] = []
        self.lock = threading.Lock()

    def on_ticks(self, batch: list[Tick]) -> None:
        with self.lock:
            self.batches.append(batch)

    def on_connected(self) -> None:
        self._event("connected", "")

    def on_disconnected(self, reason: str) -> None:
        self._event("disconnected", reason)

    def on_error(self, reason: str) -> None:
        self._event("error", reason)

    def on_order_update(self, data: dict[str, object]) -> None:
        with self.lock:
            self.order_updates.append(data)

    def _event(self, name: str, reason: str) -> None:
        with self.lock:
            self.events.append((name, reason))

    def count(self, name: str) -> int:
        return sum(1 for event, _ in self.events if event == name)


def nse_instruments(exchange: str):
    return [i for i in load_instruments() if i.exchange == exchange]


@pytest.fixture
def server():
    with ticker_server() as running:
        yield running


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def make_stream(recorder):
    streams: list[KiteTickStream] = []

    def make(ws_root: str, **kwargs) -> KiteTickStream:
        stream = KiteTickStream(
            api_key="kitekey1",
            access_token="acc3ss-t0ken-xyz",
            ws_root=ws_root,
            instruments=kwargs.pop("instruments", nse_instruments),
            on_ticks=recorder.on_ticks,
            events=recorder,
            on_order_update=recorder.on_order_update,
            backoff_initial=0.05,
            backoff_max=0.2,
            **kwargs,
        )
        streams.append(stream)
        return stream

    yield make
    for stream in streams:
        stream.stop()


def subscribed_tokens(server) -> set[int]:
    tokens: set[int] = set()
    for message in server.messages:
        if message["a"] == "subscribe":
            tokens |= set(message["v"])
        elif message["a"] == "unsubscribe":
            tokens -= set(message["v"])
    return tokens


def test_the_stream_is_a_tick_stream(make_stream, server):
    assert isinstance(make_stream(server.root), TickStream)


def test_connects_with_the_api_key_access_token_and_kite_version(make_stream, server, recorder):
    stream = make_stream(server.root)

    stream.start()

    wait_until(lambda: recorder.count("connected") == 1)
    assert stream.connected
    wait_until(lambda: server.requests)
    path, headers = server.requests[0]
    assert parse_qs(urlsplit(path).query) == {"api_key": ["kitekey1"], "access_token": ["acc3ss-t0ken-xyz"]}
    assert headers["X-Kite-Version"] == "3"


def test_subscriptions_made_before_connecting_are_sent_on_connect_with_the_mode(make_stream, server):
    stream = make_stream(server.root)
    stream.subscribe([("NSE", "INFY"), ("nse", "reliance")])

    stream.start()

    wait_until(lambda: len(server.messages) >= 2)
    assert server.messages[0] == {"a": "subscribe", "v": sorted([INFY, RELIANCE])}
    assert server.messages[1] == {"a": "mode", "v": ["full", sorted([INFY, RELIANCE])]}


def test_subscribe_and_unsubscribe_work_live(make_stream, server, recorder):
    stream = make_stream(server.root, mode="ltp")
    stream.start()
    wait_until(lambda: stream.connected)

    stream.subscribe([("NSE", "TCS")])
    wait_until(lambda: subscribed_tokens(server) == {TCS})
    stream.unsubscribe([("NSE", "TCS")])

    wait_until(lambda: {"a": "unsubscribe", "v": [TCS]} in server.messages)
    assert {"a": "mode", "v": ["ltp", [TCS]]} in server.messages


def test_each_frame_is_one_batch_of_ticks_for_subscribed_instruments_only(make_stream, server, recorder):
    stream = make_stream(server.root)
    stream.subscribe([("NSE", "INFY"), ("NSE", "RELIANCE")])
    stream.start()
    wait_until(lambda: subscribed_tokens(server) == {INFY, RELIANCE})

    server.send(HEARTBEAT)
    server.send(
        frame(
            ltp_packet(INFY, 154020),
            full_packet(RELIANCE, ltp=142050, last_trade_time=1_764_000_000, exchange_ts=1_764_000_005),
            ltp_packet(TCS, 312540),  # not subscribed: never delivered
        )
    )
    server.send(frame(ltp_packet(TCS, 312540)))
    server.send(frame(ltp_packet(INFY, 154030)))
    server.send(frame(ltp_packet(INFY, 154040)))  # frames arrive in order: this one ends the rest

    wait_until(lambda: any(t.price == 1540.4 for b in recorder.batches for t in b))
    first, second, last = recorder.batches
    assert [(t.exchange, t.symbol, t.price, t.instrument_token) for t in first] == [
        ("NSE", "INFY", 1540.2, INFY),
        ("NSE", "RELIANCE", 1420.5, RELIANCE),
    ]
    assert first[1].exchange_ts == 1_764_000_005.0  # full mode: the exchange's time
    assert abs(first[0].exchange_ts - time.time()) < 5  # ltp mode: the time of receipt
    assert [t.price for t in second] == [1540.3]
    assert [t.price for t in last] == [1540.4]


def test_order_updates_and_errors_on_the_text_channel_are_reported(make_stream, server, recorder):
    stream = make_stream(server.root)
    stream.start()
    wait_until(lambda: server.client_count == 1)

    server.send('{"type": "order", "data": {"order_id": "1", "status": "COMPLETE", "tag": "abc"}}')
    server.send('{"type": "error", "data": "Too many subscriptions"}')
    server.send('{"type": "message", "data": "hello"}')
    server.send("not json")

    wait_until(lambda: recorder.order_updates and recorder.count("error") >= 1)
    assert recorder.order_updates == [{"order_id": "1", "status": "COMPLETE", "tag": "abc"}]
    assert any("Too many subscriptions" in reason for event, reason in recorder.events if event == "error")
    assert stream.connected


def test_a_dropped_connection_reconnects_and_resubscribes_everything(make_stream, server, recorder):
    stream = make_stream(server.root)
    stream.subscribe([("NSE", "INFY")])
    stream.start()
    wait_until(lambda: subscribed_tokens(server) == {INFY})
    stream.subscribe([("NSE", "TCS")])
    wait_until(lambda: subscribed_tokens(server) == {INFY, TCS})
    server.messages.clear()

    server.drop_all()

    wait_until(lambda: recorder.count("disconnected") == 1 and recorder.count("connected") == 2)
    wait_until(lambda: subscribed_tokens(server) == {INFY, TCS})
    assert stream.connected
    server.send(frame(ltp_packet(TCS, 312540)))
    wait_until(lambda: any(t.symbol == "TCS" for b in recorder.batches for t in b))


def test_subscriptions_made_while_the_broker_is_down_are_sent_once_it_is_back(make_stream, recorder):
    port = closed_port()
    stream = make_stream(f"ws://127.0.0.1:{port}")
    stream.start()
    wait_until(lambda: recorder.count("error") >= 2)  # connect refused, retried with backoff
    assert not stream.connected

    stream.subscribe([("NSE", "INFY")])
    with ticker_server(port) as server:
        wait_until(lambda: subscribed_tokens(server) == {INFY})
        assert recorder.count("connected") == 1
        stream.stop()

    assert all("acc3ss-t0ken-xyz" not in reason for _, reason in recorder.events)


def test_unknown_instruments_and_unavailable_instrument_lists_are_reported_not_raised(make_stream, server, recorder):
    def failing(exchange: str):
        raise BrokerUnavailable("instrument dump down")

    stream = make_stream(
        server.root, instruments=lambda exchange: failing(exchange) if exchange == "BSE" else nse_instruments(exchange)
    )

    stream.subscribe([("NSE", "NOSUCHSTOCK"), ("BSE", "INFY"), ("NSE", "INFY")])

    reasons = [reason for event, reason in recorder.events if event == "error"]
    assert any("NSE:NOSUCHSTOCK" in reason for reason in reasons)
    assert any("BSE" in reason for reason in reasons)
    stream.start()
    wait_until(lambda: subscribed_tokens(server) == {INFY})


def test_stop_closes_the_connection_and_joins_the_thread(make_stream, server, recorder):
    stream = make_stream(server.root)
    stream.start()
    wait_until(lambda: stream.connected)

    stream.stop()

    assert not stream.connected
    assert recorder.count("disconnected") == 1
    assert not any(t.name == "kite-ticker" and t.is_alive() for t in threading.enumerate())
    wait_until(lambda: server.client_count == 0)


def test_a_failing_tick_handler_does_not_kill_the_stream(server, recorder):
    calls = []

    def explode(batch):
        calls.append(batch)
        raise RuntimeError("consumer bug")

    stream = KiteTickStream(
        api_key="k",
        access_token="t",
        ws_root=server.root,
        instruments=nse_instruments,
        on_ticks=explode,
        events=recorder,
    )
    stream.subscribe([("NSE", "INFY")])
    stream.start()
    try:
        wait_until(lambda: subscribed_tokens(server) == {INFY})
        server.send(frame(ltp_packet(INFY, 100)))
        server.send(frame(ltp_packet(INFY, 200)))
        wait_until(lambda: len(calls) == 2 and recorder.count("error") == 2)
        assert stream.connected
    finally:
        stream.stop()


def test_reconnect_delays_grow_exponentially_with_jitter_up_to_the_cap():
    delays = [[reconnect_delay(attempt, initial=0.5, cap=30.0) for attempt in range(12)] for _ in range(50)]

    for attempt in range(6):  # 0.5, 1, 2, 4, 8, 16: below the cap
        base = 0.5 * 2**attempt
        assert all(base / 2 <= run[attempt] <= base for run in delays)
    assert all(15.0 <= run[attempt] <= 30.0 for run in delays for attempt in range(6, 12))
    assert len({run[3] for run in delays}) > 1  # jittered, not lockstep
