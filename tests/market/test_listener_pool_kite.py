"""The listener's connection pool on the Kite simulator's real ticker (which refuses a 4th
connection per API key and a 3,001st instrument per connection): small per-connection caps
so real instruments fill them; the connections open, carry their share and tick."""

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer
from django.db import connections

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from brokers.adapters.base import FeedEvents, TickHandler, TickStream
from brokers.adapters.registry import adapter_for
from brokers.instruments import load_instruments
from brokers.kite_sim import KiteSimulator, SimAccount
from market.listener import MarketListener
from monitoring.models import Alert
from tests.factories import BrokerAccountFactory
from tests.market.helpers import events
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

EQUITIES = sorted(f"{i.exchange}:{i.symbol}" for i in load_instruments() if i.segment != "INDICES")


@pytest.fixture
def run_listener(settings, kite_sim: KiteSimulator) -> Iterator[Callable[..., MarketListener]]:
    settings.KITE_API_ROOT = kite_sim.api_root
    settings.KITE_WS_ROOT = kite_sim.ws_root
    settings.KITE_SIMULATED = True
    running: list[tuple[threading.Event, threading.Thread]] = []

    def run(accounts: list[SimAccount], **options: Any) -> MarketListener:
        def factory_of(sim_account: SimAccount) -> Callable[[TickHandler, FeedEvents], TickStream]:
            account = BrokerAccountFactory.create(
                kite=True,
                api_key=sim_account.api_key,
                api_secret=sim_account.api_secret,
                access_token=sim_account.access_token,
                broker_user_id=sim_account.user_id,
            )
            adapter = adapter_for(account)
            return lambda on_ticks, events: adapter.tick_stream(on_ticks, events)

        listener = MarketListener(
            stream_factory=[factory_of(a) for a in accounts],
            simulated_venue=True,
            channel_layer=InMemoryChannelLayer(capacity=10_000),
            reconcile_seconds=0.5,
            **options,
        )
        stop = threading.Event()

        def listen() -> None:
            try:
                listener.run(stop)
            finally:
                connections.close_all()  # this thread's: the test database is dropped after the test

        thread = threading.Thread(target=listen, daemon=True)
        thread.start()
        running.append((stop, thread))
        return listener

    yield run
    for stop, thread in running:
        stop.set()
        thread.join(timeout=20)
    wait_until(lambda: kite_sim.ticker_client_count == 0)


def at_simulator(kite_sim: KiteSimulator) -> set[str]:
    return {f"{i.exchange}:{i.symbol}" for i in kite_sim._ticker.subscribed_instruments()}


def want(instruments: list[str]) -> None:
    for instrument in instruments:
        get_redis().sadd(redis_keys.symbol_strategies(instrument), 1)


def test_past_one_keys_three_connections_the_rest_is_left_out_with_an_l4_armed_stops_carried(
    run_listener, kite_sim, sim_account
):
    wanted = EQUITIES[:20]
    want(wanted)
    armed = wanted[-2:]  # last by name: carried only because their stops are armed
    for instrument in armed:
        get_redis().zadd(redis_keys.stop_losses(instrument), {"1": 1.0})

    listener = run_listener([sim_account], per_connection=5, connections_per_key=3)

    wait_until(lambda: at_simulator(kite_sim) == listener.subscribed and len(listener.subscribed) == 15)
    wait_until(lambda: Alert.objects.filter(kind="feed_over_capacity", resolved_at__isnull=True).exists())
    assert kite_sim.ticker_client_count == 3
    assert set(armed) <= listener.subscribed
    assert [e.payload["uncarried"] for e in events("L4")] == [5]
    wait_until(lambda: len(events("B5")) == 3)  # every connection up, none refused
    assert events("M3") == []


def test_a_second_feed_account_carries_what_the_first_keys_connections_cannot(run_listener, kite_sim, sim_account):
    other = kite_sim.create_account()
    want(EQUITIES[:16])

    listener = run_listener([sim_account, other], per_connection=5, connections_per_key=3)

    wait_until(lambda: at_simulator(kite_sim) == set(EQUITIES[:16]) == listener.subscribed)
    assert kite_sim.ticker_client_count == 4
    assert not Alert.objects.filter(kind="feed_over_capacity").exists()
