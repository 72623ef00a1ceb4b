"""The listener's logic with a stand-in stream and an in-memory channel layer: one
message per frame, the feed's events, the first tick of an instrument marked for M1."""

import asyncio
from collections.abc import Iterable, Iterator

import pytest
from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from brokers.adapters.base import FeedEvents, Tick, TickHandler
from market.listener import MarketListener
from market.ticks import TICKS_CHANNEL
from tests.market.helpers import events


class FakeStream:
    def __init__(self) -> None:
        self.subscribed: set[tuple[str, str]] = set()
        self.connected = True

    def start(self) -> None: ...
    def stop(self) -> None: ...

    def subscribe(self, instruments: Iterable[tuple[str, str]]) -> None:
        self.subscribed |= set(instruments)

    def unsubscribe(self, instruments: Iterable[tuple[str, str]]) -> None:
        self.subscribed -= set(instruments)


@pytest.fixture
def listener() -> Iterator[tuple[MarketListener, FakeStream, InMemoryChannelLayer]]:
    stream = FakeStream()
    layer = InMemoryChannelLayer()

    def factory(on_ticks: TickHandler, events: FeedEvents) -> FakeStream:
        return stream

    market = MarketListener(stream_factory=factory, simulated_venue=True, channel_layer=layer)
    market._loop_thread.start()
    yield market, stream, layer
    market._loop.call_soon_threadsafe(market._loop.stop)


def received(layer: InMemoryChannelLayer) -> list[dict[str, object]]:
    async def drain() -> list[dict[str, object]]:
        messages = []
        while layer.channels.get(TICKS_CHANNEL):
            messages.append(await layer.receive(TICKS_CHANNEL))
        return messages

    return asyncio.run(drain())


def tick(symbol: str, price: float, ts: float = 1.0) -> Tick:
    return Tick(exchange="NSE", symbol=symbol, price=price, exchange_ts=ts)


def test_one_frame_is_one_message_with_all_its_ticks(listener):
    market, _, layer = listener

    market.on_ticks([tick("INFY", 1540.0), tick("TCS", 3500.0), tick("INFY", 1540.5)])

    [message] = received(layer)
    assert message["type"] == "ticks.batch"
    assert message["ticks"] == [["NSE:INFY", 1540.0, 1.0], ["NSE:TCS", 3500.0, 1.0], ["NSE:INFY", 1540.5, 1.0]]


def test_the_reconcile_subscribes_running_and_armed_instruments_and_marks_their_first_tick(listener):
    market, stream, layer = listener
    get_redis().sadd(redis_keys.symbol_strategies("NSE:INFY"), 1)
    get_redis().zadd(redis_keys.stop_losses("NSE:TCS"), {"2": 3000.0})

    market.reconcile()
    market.on_ticks([tick("INFY", 1540.0)])
    market.on_ticks([tick("INFY", 1541.0), tick("TCS", 3500.0)])

    assert stream.subscribed == {("NSE", "INFY"), ("NSE", "TCS")}
    first, second = received(layer)
    assert first["first"] == ["NSE:INFY"] and second["first"] == ["NSE:TCS"]


def test_a_stopped_strategy_set_unsubscribes_its_instrument(listener):
    market, stream, _ = listener
    get_redis().sadd(redis_keys.symbol_strategies("NSE:INFY"), 1)
    market.reconcile()

    get_redis().delete(redis_keys.symbol_strategies("NSE:INFY"))
    market.recheck(["NSE:INFY"])

    assert stream.subscribed == set()


@pytest.mark.django_db(transaction=True)  # the listener closes stale connections as a long-lived process must
def test_a_disconnect_records_m3_and_b6_and_the_next_ticks_m4(listener):
    market, _, _ = listener
    market.on_connected()

    market.on_disconnected("Connection reset by peer")
    market.on_disconnected("Connection reset by peer")  # still the same incident
    market.on_connected()
    market.on_ticks([tick("INFY", 1540.0)])
    market.record_events()

    assert [e.code for e in events("B5")] == ["B5", "B5"]
    assert len(events("M3")) == 1 and len(events("M4")) == 1
    assert all(e.user_id is None for e in events("B6"))
    assert events("M3")[0].id < events("M4")[0].id


def test_our_own_stop_is_not_a_disconnect(listener):
    market, _, _ = listener

    market.on_disconnected("stopped")

    assert market._events.empty()


class FullLayer(InMemoryChannelLayer):
    async def send(self, channel: str, message: dict[str, object]) -> None:
        raise ChannelFull()


def test_a_full_channel_drops_the_frame_with_one_b6_and_never_raises_into_the_stream():
    def factory(on_ticks: TickHandler, events: FeedEvents) -> FakeStream:
        return FakeStream()

    market = MarketListener(stream_factory=factory, simulated_venue=True, channel_layer=FullLayer())
    market._loop_thread.start()
    try:
        market.on_ticks([tick("INFY", 1540.0)])
        market.on_ticks([tick("INFY", 1541.0)])
    finally:
        market._loop.call_soon_threadsafe(market._loop.stop)

    queued = [market._events.get_nowait() for _ in range(market._events.qsize())]
    assert [emission.event.code for emission in queued] == ["B6"]
