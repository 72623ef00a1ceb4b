"""The account's actions end the sockets of the logins they end: a password change every
other login's, a session ended by the user that login's, an account deleted every one."""

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async

from algotrader.users.models import RefreshTokenRecord
from algotrader.users.services import session_revoke, tokens_issue, user_password_change
from execution.services.account import account_delete
from tests.factories import UserFactory
from tests.market.test_user_socket_session import socket

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct horse battery staple"


def test_a_password_change_closes_every_other_logins_sockets():
    user = UserFactory.create(password=PASSWORD)
    this_login, other_login = tokens_issue(user=user), tokens_issue(user=user)
    this_family = RefreshTokenRecord.objects.filter(user=user).earliest("id").family

    def change() -> None:
        user_password_change(
            user=user, current_password=PASSWORD, new_password="a brand new passphrase", current_session=this_family
        )

    async def run():
        mine, other = socket(this_login.access), socket(other_login.access)
        await mine.connect()
        await other.connect()
        await database_sync_to_async(change)()
        ended = await other.receive_json_from(timeout=5)
        mine_open = await mine.receive_nothing(timeout=0.5)
        await mine.disconnect()
        return ended, mine_open

    ended, mine_open = async_to_sync(run)()

    assert ended == {"type": "session.ended", "reason": "password_changed"}
    assert mine_open


def test_ending_a_session_closes_its_sockets_only():
    user = UserFactory.create(password=PASSWORD)
    this_login, other_login = tokens_issue(user=user), tokens_issue(user=user)
    other_family = RefreshTokenRecord.objects.filter(user=user).latest("id").family

    async def run():
        mine, other = socket(this_login.access), socket(other_login.access)
        await mine.connect()
        await other.connect()
        await database_sync_to_async(session_revoke)(user=user, session_id=other_family)
        ended = await other.receive_json_from(timeout=5)
        mine_open = await mine.receive_nothing(timeout=0.5)
        await mine.disconnect()
        return ended, mine_open

    ended, mine_open = async_to_sync(run)()

    assert ended == {"type": "session.ended", "reason": "session_revoked"}
    assert mine_open


def test_deleting_the_account_closes_every_socket():
    user = UserFactory.create(password=PASSWORD)
    first, second = tokens_issue(user=user), tokens_issue(user=user)

    async def run():
        sockets = [socket(first.access), socket(second.access)]
        for ws in sockets:
            await ws.connect()
        await database_sync_to_async(account_delete)(user=user, password=PASSWORD)
        return [await ws.receive_json_from(timeout=5) for ws in sockets]

    ended = async_to_sync(run)()

    assert ended == [{"type": "session.ended", "reason": "account_deactivated"}] * 2
