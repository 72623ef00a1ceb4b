"""An open WebSocket is held to a request's rules: it ends with its access token unless renewed
in-band, on logout of its login, on deactivation of its user; a native app without an Origin
is let in on its token, a browser's foreign Origin is not; a bad frame gets an error message."""

import json
import time
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework_simplejwt.tokens import AccessToken

from algotrader.asgi import application
from algotrader.users.models import User
from algotrader.users.services import token_logout, tokens_issue
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

PATH = "/ws/v1/events/"


def socket(token: str, origin: bytes | None = b"http://localhost") -> WebsocketCommunicator:
    headers = [(b"authorization", f"Bearer {token}".encode())]
    if origin is not None:
        headers.append((b"origin", origin))
    return WebsocketCommunicator(application, PATH, headers=headers)


def short_lived(user: User, seconds: float) -> str:
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(seconds=seconds))
    return str(token)


def test_the_socket_closes_when_its_token_expires():
    token = short_lived(UserFactory.create(), 1.0)

    async def run():
        ws = socket(token)
        connected, _ = await ws.connect()
        ended = await ws.receive_json_from(timeout=10)
        closed = await ws.receive_output(timeout=5)
        return connected, ended, closed

    connected, ended, closed = async_to_sync(run)()

    assert connected
    assert ended == {"type": "session.ended", "reason": "token_expired"}
    assert closed == {"type": "websocket.close", "code": 4401}


def test_a_fresh_token_sent_in_band_keeps_the_socket_open():
    user = UserFactory.create()
    token = short_lived(user, 1.5)

    async def run():
        ws = socket(token)
        await ws.connect()
        await ws.send_to(text_data=json.dumps({"type": "auth", "token": short_lived(user, 120)}))
        renewed = await ws.receive_json_from(timeout=5)
        still_open = await ws.receive_nothing(timeout=2.5)
        await ws.disconnect()
        return renewed, still_open

    renewed, still_open = async_to_sync(run)()

    assert renewed["type"] == "auth.ok"
    assert renewed["expires_at"] > time.time() + 60
    assert still_open


def test_another_users_token_does_not_renew_the_socket():
    token = short_lived(UserFactory.create(), 60)
    other = short_lived(UserFactory.create(), 120)

    async def run():
        ws = socket(token)
        await ws.connect()
        await ws.send_to(text_data=json.dumps({"type": "auth", "token": other}))
        answer = await ws.receive_json_from(timeout=5)
        await ws.disconnect()
        return answer

    assert async_to_sync(run)()["code"] == "token_invalid"


def test_logout_closes_the_sockets_of_that_login_only():
    user = UserFactory.create()
    this_login, other_login = tokens_issue(user=user), tokens_issue(user=user)

    async def run():
        mine, other = socket(this_login.access), socket(other_login.access)
        await mine.connect()
        await other.connect()
        await database_sync_to_async(token_logout)(refresh=this_login.refresh)
        ended = await mine.receive_json_from(timeout=5)
        other_open = await other.receive_nothing(timeout=0.5)
        await other.disconnect()
        return ended, other_open

    ended, other_open = async_to_sync(run)()

    assert ended == {"type": "session.ended", "reason": "logged_out"}
    assert other_open


def test_deactivating_the_user_closes_every_socket():
    user = UserFactory.create()
    token = tokens_issue(user=user).access

    async def run():
        ws = socket(token)
        await ws.connect()

        def deactivate() -> None:
            user.is_active = False
            user.save(update_fields=["is_active"])

        await database_sync_to_async(deactivate)()
        return await ws.receive_json_from(timeout=5)

    assert async_to_sync(run)() == {"type": "session.ended", "reason": "account_deactivated"}


def test_a_native_app_without_origin_connects_and_a_foreign_browser_origin_does_not():
    token = tokens_issue(user=UserFactory.create()).access

    async def run():
        native, foreign = socket(token, origin=None), socket(token, origin=b"https://evil.example.com")
        native_connected, _ = await native.connect()
        foreign_connected, _ = await foreign.connect()
        await native.disconnect()
        return native_connected, foreign_connected

    assert async_to_sync(run)() == (True, False)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "malformed_frame"),
        ("[1, 2]", "malformed_frame"),
        ("x" * 9000, "frame_too_large"),
        ("{}", "unknown_type"),
    ],
)
def test_a_bad_frame_gets_an_error_message_and_the_socket_stays(frame, code):
    token = tokens_issue(user=UserFactory.create()).access

    async def run():
        ws = socket(token)
        await ws.connect()
        await ws.send_to(text_data=frame)
        error = await ws.receive_json_from(timeout=5)
        await ws.send_to(text_data="{}")
        still_answering = await ws.receive_json_from(timeout=5)
        await ws.disconnect()
        return error, still_answering

    error, still_answering = async_to_sync(run)()

    assert error["type"] == "error"
    assert error["code"] == code
    assert still_answering["code"] == "unknown_type"
