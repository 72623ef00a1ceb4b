"""``manage.py rotate_field_keys``: every secret re-encrypted under the first key, all or
nothing, so that the old key can then be removed."""

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from brokers.fields import DecryptionError
from brokers.models import BrokerAccount
from tests.factories import BrokerAccountFactory

pytestmark = pytest.mark.django_db

OLD = Fernet.generate_key().decode()
NEW = Fernet.generate_key().decode()
SECRET_COLUMNS = ("api_key", "api_secret", "access_token")


def raw_secrets() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key, api_secret, access_token FROM brokers_brokeraccount ORDER BY id")
        return [value for row in cursor.fetchall() for value in row if value]


def plain_secrets() -> list[str]:
    return [getattr(a, c) for a in BrokerAccount.objects.order_by("id") for c in SECRET_COLUMNS if getattr(a, c)]


def opens(key: str, token: str) -> bool:
    try:
        Fernet(key).decrypt(token.encode())
    except InvalidToken:
        return False
    return True


@pytest.fixture
def accounts_under_old_key():
    with override_settings(FIELD_ENCRYPTION_KEYS=[OLD]):
        BrokerAccountFactory.create_batch(3, kite=True)
        BrokerAccountFactory.create(access_token="")
        return plain_secrets()


def test_rotation_reencrypts_every_secret_under_the_new_key(accounts_under_old_key):
    with override_settings(FIELD_ENCRYPTION_KEYS=[NEW, OLD]):
        call_command("rotate_field_keys", stdout=None)

    tokens = raw_secrets()
    assert len(tokens) == len(accounts_under_old_key) == 9
    assert not any(opens(OLD, token) for token in tokens)
    assert all(opens(NEW, token) for token in tokens)


def test_after_rotation_the_new_key_alone_reads_every_secret(accounts_under_old_key):
    with override_settings(FIELD_ENCRYPTION_KEYS=[NEW, OLD]):
        call_command("rotate_field_keys")

    with override_settings(FIELD_ENCRYPTION_KEYS=[NEW]):
        assert plain_secrets() == accounts_under_old_key


def test_after_rotation_the_old_key_alone_reads_nothing(accounts_under_old_key):
    with override_settings(FIELD_ENCRYPTION_KEYS=[NEW, OLD]):
        call_command("rotate_field_keys")

    with override_settings(FIELD_ENCRYPTION_KEYS=[OLD]), pytest.raises(DecryptionError):
        plain_secrets()


def test_a_secret_no_key_opens_aborts_the_rotation_and_changes_nothing(accounts_under_old_key):
    with override_settings(FIELD_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        BrokerAccountFactory.create(kite=True)  # encrypted under a key that is then lost
    before = raw_secrets()

    with override_settings(FIELD_ENCRYPTION_KEYS=[NEW, OLD]), pytest.raises(CommandError, match="Nothing was changed"):
        call_command("rotate_field_keys")

    assert raw_secrets() == before
