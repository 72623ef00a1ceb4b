"""The app's WebSocket: JWT-authenticated, and each user hears only their own events."""

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework_simplejwt.tokens import RefreshToken

from algotrader.asgi import application
from monitoring.events import Event
from monitoring.services import emit
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

PATH = "/ws/v1/events/"


def access_for(user) -> str:
    return str(RefreshToken.for_user(user).access_token)


def communicator(headers=None, subprotocols=None) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://localhost"), *(headers or [])]
    return WebsocketCommunicator(application, PATH, headers=headers, subprotocols=subprotocols)


def test_connection_without_a_token_is_refused():
    async def run():
        ws = communicator()
        connected, code = await ws.connect()
        return connected, code

    connected, code = async_to_sync(run)()

    assert not connected
    assert code == 4401


def test_connection_with_an_invalid_token_is_refused():
    async def run():
        ws = communicator(headers=[(b"authorization", b"Bearer not-a-token")])
        return await ws.connect()

    connected, _ = async_to_sync(run)()

    assert not connected


def test_user_receives_own_events_and_not_others():
    me, other = UserFactory(), UserFactory()
    token = access_for(me)

    async def run():
        ws = communicator(headers=[(b"authorization", f"Bearer {token}".encode())])
        connected, _ = await ws.connect()
        assert connected
        await database_sync_to_async(emit)(Event.S1_STRATEGY_STARTED, user=other, payload={"strategy_id": 2})
        await database_sync_to_async(emit)(Event.S1_STRATEGY_STARTED, user=me, payload={"strategy_id": 1})
        message = await ws.receive_json_from(timeout=5)
        nothing_else = await ws.receive_nothing(timeout=0.3)
        await ws.disconnect()
        return message, nothing_else

    message, nothing_else = async_to_sync(run)()

    assert message["event"]["code"] == "S1"
    assert message["event"]["payload"] == {"strategy_id": 1}
    assert nothing_else


def test_browser_clients_authenticate_with_the_bearer_subprotocol():
    token = access_for(UserFactory())

    async def run():
        ws = communicator(subprotocols=["bearer", token])
        connected, subprotocol = await ws.connect()
        await ws.disconnect()
        return connected, subprotocol

    connected, subprotocol = async_to_sync(run)()

    assert connected
    assert subprotocol == "bearer"
