"""Live prices on the app's WebSocket: a user's socket hears the prices of the instruments
their running strategies trade, nobody else's, at most one a push interval."""

import time

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import ApplicationCommunicator, WebsocketCommunicator
from rest_framework_simplejwt.tokens import RefreshToken

from algotrader.asgi import application
from market.consumers import TickConsumer
from market.prices import price_group
from market.ticks import BATCH_TYPE, TICKS_CHANNEL
from monitoring.events import Event
from monitoring.services import emit
from tests.factories import BrokerAccountFactory
from tests.market.helpers import declare_queues, running_strategy

pytestmark = pytest.mark.django_db(transaction=True)


def socket_for(token: str) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://localhost"), (b"authorization", f"Bearer {token}".encode())]
    return WebsocketCommunicator(application, "/ws/v1/events/", headers=headers)


def tick_batch(*ticks: tuple[str, float]) -> dict[str, object]:
    now = time.time()
    return {"type": BATCH_TYPE, "ticks": [[i, p, now] for i, p in ticks], "received_at": now}


@pytest.fixture(autouse=True)
def queues() -> None:
    declare_queues()


def test_price_group_names_are_valid_for_any_symbol():
    assert price_group("NSE:INFY") == "price.NSE.INFY"
    assert price_group("NSE:M&M") == "price.NSE.M_26M"
    assert price_group("NSE:BAJAJ-AUTO") == "price.NSE.BAJAJ-AUTO"


def test_a_user_hears_the_prices_of_their_own_strategies_only_and_throttled():
    mine = running_strategy(symbol="INFY")
    running_strategy(symbol="TCS")  # another user's
    token = str(RefreshToken.for_user(mine.owner).access_token)

    async def run():
        ws = socket_for(token)
        assert (await ws.connect())[0]
        ticks = ApplicationCommunicator(TickConsumer.as_asgi(), {"type": "channel", "channel": TICKS_CHANNEL})
        await ticks.send_input(tick_batch(("NSE:INFY", 1540.5), ("NSE:TCS", 3500.0)))
        first = await ws.receive_json_from(timeout=5)
        await ticks.send_input(tick_batch(("NSE:INFY", 1541.0)))  # inside the push interval
        quiet = await ws.receive_nothing(timeout=0.3)
        await ws.disconnect()
        ticks.stop()
        return first, quiet

    first, quiet = async_to_sync(run)()

    assert first["type"] == "price" and first["instrument"] == "NSE:INFY" and first["price"] == "1540.5"
    assert quiet


def test_a_strategy_started_while_connected_adds_its_prices():
    account = BrokerAccountFactory.create()
    running_strategy(account=account, symbol="INFY")
    token = str(RefreshToken.for_user(account.owner).access_token)

    async def run():
        ws = socket_for(token)
        assert (await ws.connect())[0]
        started = await database_sync_to_async(running_strategy)(account=account, symbol="TCS")
        await database_sync_to_async(emit)(Event.S3_STRATEGY_RUNNING, strategy=started)
        event = await ws.receive_json_from(timeout=5)
        ticks = ApplicationCommunicator(TickConsumer.as_asgi(), {"type": "channel", "channel": TICKS_CHANNEL})
        await ticks.send_input(tick_batch(("NSE:TCS", 3500.0)))
        price = await ws.receive_json_from(timeout=5)
        await ws.disconnect()
        ticks.stop()
        return event, price

    event, price = async_to_sync(run)()

    assert event["event"]["code"] == "S3"
    assert price["instrument"] == "NSE:TCS"
