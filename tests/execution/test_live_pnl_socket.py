"""Live P&L on the app's socket: each price push carries the unrealized P&L of the user's open
positions in that instrument, from figures loaded when the socket opens and when an order
settles (E5), never read per tick; nobody else's positions ride on it."""

import time
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import ApplicationCommunicator, WebsocketCommunicator
from rest_framework_simplejwt.tokens import RefreshToken

from algotrader.asgi import application
from execution.models import Order
from market.consumers import TickConsumer
from market.ticks import BATCH_TYPE, TICKS_CHANNEL
from monitoring.events import Event
from monitoring.services import emit
from tests.execution.api_helpers import order_make
from tests.factories import BrokerAccountFactory
from tests.market.helpers import declare_queues, running_strategy

pytestmark = pytest.mark.django_db(transaction=True)


def socket_for(user) -> WebsocketCommunicator:
    token = str(RefreshToken.for_user(user).access_token)
    headers = [(b"origin", b"http://localhost"), (b"authorization", f"Bearer {token}".encode())]
    return WebsocketCommunicator(application, "/ws/v1/events/", headers=headers)


def tick(instrument: str, price: float) -> dict[str, object]:
    now = time.time()
    return {"type": BATCH_TYPE, "ticks": [[instrument, price, now]], "received_at": now}


@pytest.fixture(autouse=True)
def queues() -> None:
    declare_queues()


@pytest.fixture(autouse=True)
def every_price_pushed(settings) -> None:
    settings.MARKET_PRICE_PUSH_INTERVAL = 0


def test_a_price_push_carries_the_open_positions_unrealized_pnl():
    # Given 10 INFY held, bought at 1500, and another user's position in the same instrument.
    mine = running_strategy(symbol="INFY", position="BOUGHT")
    order_make(mine, "BUY", quantity=10, fill_price=Decimal("1500"))
    theirs = running_strategy(symbol="INFY", position="BOUGHT")
    order_make(theirs, "BUY", quantity=5, fill_price=Decimal("1400"))

    async def run():
        ws = socket_for(mine.owner)
        assert (await ws.connect())[0]
        ticks = ApplicationCommunicator(TickConsumer.as_asgi(), {"type": "channel", "channel": TICKS_CHANNEL})
        await ticks.send_input(tick("NSE:INFY", 1512.35))
        push = await ws.receive_json_from(timeout=5)
        await ws.disconnect()
        ticks.stop()
        return push

    push = async_to_sync(run)()

    # Then 10 x (1512.35 - 1500) rides with the price, and only the user's own position.
    assert (push["type"], push["price"]) == ("price", "1512.35")
    assert push["positions"] == [{"strategy_id": mine.pk, "quantity": 10, "unrealized_pnl": "123.50"}]


def test_a_fill_settled_while_connected_is_priced_from_the_next_push_and_not_reread_per_tick():
    account = BrokerAccountFactory.create()
    strategy = running_strategy(account=account, symbol="INFY")

    async def run():
        ws = socket_for(account.owner)
        assert (await ws.connect())[0]
        ticks = ApplicationCommunicator(TickConsumer.as_asgi(), {"type": "channel", "channel": TICKS_CHANNEL})
        await ticks.send_input(tick("NSE:INFY", 1500.0))
        before = await ws.receive_json_from(timeout=5)

        # When the BUY settles (E5 is pushed after its commit).
        order = await database_sync_to_async(order_make)(strategy, "BUY", quantity=4, fill_price=Decimal("1490"))
        await database_sync_to_async(emit)(Event.E5_ORDER_FINALIZED, strategy=strategy, order=order)
        event = await ws.receive_json_from(timeout=5)

        await ticks.send_input(tick("NSE:INFY", 1489.5))
        after = await ws.receive_json_from(timeout=5)
        # A row changed behind the socket's back (no event) is not seen: ticks read nothing.
        await database_sync_to_async(Order.objects.filter(pk=order.pk).update)(fill_price=Decimal("1000"))
        await ticks.send_input(tick("NSE:INFY", 1491.0))
        later = await ws.receive_json_from(timeout=5)
        await ws.disconnect()
        ticks.stop()
        return before, event, after, later

    before, event, after, later = async_to_sync(run)()

    assert "positions" not in before
    assert event["event"]["code"] == "E5"
    assert after["positions"] == [{"strategy_id": strategy.pk, "quantity": 4, "unrealized_pnl": "-2.00"}]
    assert later["positions"] == [{"strategy_id": strategy.pk, "quantity": 4, "unrealized_pnl": "4.00"}]
