"""The listener spreads its instruments over as many tick connections as they need (at most
MARKET_FEED_INSTRUMENTS_PER_CONNECTION each, MARKET_FEED_CONNECTIONS_PER_KEY per feed
account); what no connection can carry raises one L4, armed stops carried first. Stand-in
streams (one per connection) and an in-memory channel layer; Kite's real figures where cheap."""

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer
from django.core.management import CommandError, call_command

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from brokers.adapters.base import FeedEvents, Tick, TickHandler
from market.listener import MarketListener
from monitoring.models import Alert
from tests.factories import BrokerAccountFactory
from tests.market.helpers import events


class Stream:
    """A stand-in broker connection: what it was asked to carry, and its starts and stops."""

    def __init__(self, account: str, on_ticks: TickHandler, events: FeedEvents) -> None:
        self.account = account
        self.on_ticks = on_ticks
        self.events = events
        self.subscribed: set[str] = set()
        self.connected = True
        self.starts = self.stops = 0

    def start(self) -> None:
        self.starts += 1

    def stop(self) -> None:
        self.stops += 1

    def subscribe(self, instruments: Iterable[tuple[str, str]]) -> None:
        self.subscribed |= {f"{exchange}:{symbol}" for exchange, symbol in instruments}

    def unsubscribe(self, instruments: Iterable[tuple[str, str]]) -> None:
        self.subscribed -= {f"{exchange}:{symbol}" for exchange, symbol in instruments}


Build = Callable[..., tuple[MarketListener, list[Stream]]]


@pytest.fixture
def pool() -> Iterator[Build]:
    listeners: list[MarketListener] = []

    def build(*, accounts: int = 1, **options: Any) -> tuple[MarketListener, list[Stream]]:
        streams: list[Stream] = []

        def factory_of(account: str) -> Callable[[TickHandler, FeedEvents], Stream]:
            def factory(on_ticks: TickHandler, events: FeedEvents) -> Stream:
                streams.append(Stream(account, on_ticks, events))
                return streams[-1]

            return factory

        factories = [factory_of(f"key{n + 1}") for n in range(accounts)]
        market = MarketListener(
            stream_factory=factories, simulated_venue=True, channel_layer=InMemoryChannelLayer(), **options
        )
        market._loop_thread.start()
        listeners.append(market)
        return market, streams

    yield build
    for market in listeners:
        market._loop.call_soon_threadsafe(market._loop.stop)


def name(n: int) -> str:
    return f"NSE:S{n:05d}"


def watch(numbers: Iterable[int]) -> set[str]:
    pipe = get_redis().pipeline(transaction=False)
    instruments = {name(n) for n in numbers}
    for instrument in instruments:
        pipe.sadd(redis_keys.symbol_strategies(instrument), 1)
    pipe.execute()
    return instruments


def arm(numbers: Iterable[int]) -> set[str]:
    instruments = {name(n) for n in numbers}
    for instrument in instruments:
        get_redis().zadd(redis_keys.stop_losses(instrument), {"1": 1.0})
    return instruments


def unwatch(instruments: Iterable[str]) -> None:
    for instrument in instruments:
        get_redis().delete(redis_keys.symbol_strategies(instrument), redis_keys.stop_losses(instrument))


def loads(streams: list[Stream]) -> list[int]:
    return [len(stream.subscribed) for stream in streams]


def capacity_alerts() -> list[Alert]:
    return list(Alert.objects.filter(kind="feed_over_capacity").order_by("id"))


@pytest.mark.django_db(transaction=True)  # the listener closes stale connections as a long-lived process must
def test_7000_wanted_on_one_key_take_three_connections_of_3000_3000_1000_and_no_alert(pool):
    market, streams = pool()  # Kite's figures: the settings' defaults
    wanted = watch(range(7000))

    market.reconcile()
    market.record_events()

    assert loads(streams) == [3000, 3000, 1000]
    assert set().union(*(s.subscribed for s in streams)) == wanted == market.subscribed
    assert capacity_alerts() == [] and events("L4") == []


@pytest.mark.django_db(transaction=True)
def test_10000_wanted_on_one_key_fill_three_connections_and_one_l4_names_the_1000_uncarried(pool):
    market, streams = pool()
    watch(range(10_000))
    armed = arm(range(9_900, 10_000))  # sorted last: carried only because they are armed

    market.reconcile()
    market.record_events()
    market.reconcile()  # still over capacity: the same incident, not another L4
    market.record_events()

    assert loads(streams) == [3000, 3000, 3000]
    assert armed <= market.subscribed
    [alert] = capacity_alerts()
    assert alert.resolved_at is None and alert.payload["uncarried"] == 1000
    assert alert.payload["uncarried_armed"] == 0 and alert.payload["wanted"] == 10_000
    [l4] = events("L4")
    assert l4.user_id is None and "1000 of 10000 instruments wanted are not carried" in l4.message


def test_an_instrument_stays_on_its_connection_and_a_new_one_goes_to_the_least_loaded(pool):
    market, streams = pool(per_connection=5)
    watch(range(12))
    market.reconcile()
    first, second, third = (set(s.subscribed) for s in streams)
    unwatch(sorted(second)[:3])

    market.reconcile()
    watch([12])
    market.recheck([name(12)])

    assert loads(streams) == [5, 3, 2]  # 5, 2 and 2 before: the tie goes to the earlier connection
    assert streams[0].subscribed == first and third <= streams[2].subscribed
    assert streams[1].subscribed == set(sorted(second)[3:]) | {name(12)}


@pytest.mark.django_db(transaction=True)
def test_an_armed_stop_on_a_full_pool_takes_a_watched_instruments_place(pool):
    market, streams = pool(per_connection=2, connections_per_key=1)
    watch([1, 2])
    market.reconcile()

    arm([3])
    market.recheck([name(3)])
    market.record_events()

    assert market.subscribed == {name(1), name(3)}  # the last watched one by name gives way
    assert streams[0].subscribed == market.subscribed and len(streams) == 1
    assert capacity_alerts()[0].payload["examples"] == [name(2)]


@pytest.mark.django_db(transaction=True)
def test_room_freed_carries_the_left_out_instruments_and_resolves_the_l4(pool):
    market, streams = pool(per_connection=2, connections_per_key=2)
    watch(range(6))
    market.reconcile()
    market.record_events()
    assert len(market.subscribed) == 4

    unwatch([name(0), name(1)])
    market.recheck([name(0), name(1)])
    market.record_events()

    assert market.subscribed == {name(n) for n in range(2, 6)}
    assert loads(streams) == [2, 2]
    [alert] = capacity_alerts()
    assert alert.resolved_at is not None
    opened, resolved = events("L4")
    assert opened.payload["state"] == "open" and resolved.payload["state"] == "resolved"


def test_connections_beyond_one_keys_share_go_to_the_next_feed_account(pool):
    market, streams = pool(accounts=2, per_connection=5, connections_per_key=2)
    watch(range(16))

    market.reconcile()

    assert [s.account for s in streams] == ["key1", "key1", "key2", "key2"]
    assert loads(streams) == [5, 5, 5, 1] and len(market.subscribed) == 16


@pytest.mark.django_db(transaction=True)
def test_one_connection_dropping_gives_its_own_m3_and_only_its_ticks_its_m4(pool):
    market, streams = pool(per_connection=1)
    watch([1, 2])
    market.reconcile()
    first, second = streams

    second.events.on_disconnected("Connection reset by peer")
    first.on_ticks([Tick(exchange="NSE", symbol="S00001", price=10.0, exchange_ts=1.0)])
    market.record_events()
    assert [e.payload["connection"] for e in events("M3")] == [2] and events("M4") == []

    second.on_ticks([Tick(exchange="NSE", symbol="S00002", price=10.0, exchange_ts=1.0)])
    market.record_events()

    [m4] = events("M4")
    assert m4.payload["connection"] == 2 and "connection 2" in m4.message


@pytest.mark.django_db(transaction=True)
def test_a_silent_connection_is_restarted_alone(pool):
    market, streams = pool(per_connection=1, stall_seconds=0.2)
    watch([1, 2])
    market.reconcile()
    first, second = streams
    for connection in market.connections:  # both subscribed a second ago
        connection.quiet_since -= 1.0

    first.on_ticks([Tick(exchange="NSE", symbol="S00001", price=10.0, exchange_ts=1.0)])  # the second stays silent
    market.check_health()
    market.record_events()

    assert (first.stops, second.stops) == (0, 1) and second.starts == 1
    assert [e.payload["connection"] for e in events("M3")] == [2]


@pytest.mark.django_db
def test_the_command_refuses_a_feed_account_that_does_not_exist(settings):
    settings.MARKET_FEED_ACCOUNT_IDS = [987_654]

    with pytest.raises(CommandError, match="no broker account 987654"):
        call_command("run_market_listener")


@pytest.mark.django_db
def test_the_command_refuses_two_feed_accounts_on_one_api_key(settings):
    first = BrokerAccountFactory.create(kite=True, api_key="samekey")
    second = BrokerAccountFactory.create(kite=True, api_key="samekey")
    settings.MARKET_FEED_ACCOUNT_IDS = [first.pk, second.pk]

    with pytest.raises(CommandError, match="share an API key"):
        call_command("run_market_listener")
