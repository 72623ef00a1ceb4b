"""EncryptedTextField: plain text in Python, a Fernet token in the database, readable
only with FIELD_ENCRYPTION_KEYS (and with nothing else, SECRET_KEY included)."""

import io
import json

import pytest
from cryptography.fernet import Fernet
from django.core import serializers
from django.core.exceptions import FieldError, ImproperlyConfigured
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from brokers.fields import DecryptionError, field_fernet
from brokers.models import BrokerAccount
from tests.factories import BrokerAccountFactory

pytestmark = pytest.mark.django_db

SECRET = "s3cr3t-api-secret-value"


def raw_column(account: BrokerAccount, column: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM brokers_brokeraccount WHERE id = %s", [account.pk])  # noqa: S608
        value: str = cursor.fetchone()[0]
        return value


def test_a_secret_reads_back_as_the_text_that_was_saved():
    account = BrokerAccountFactory.create(kite=True, api_secret=SECRET)

    reloaded = BrokerAccount.objects.get(pk=account.pk)

    assert reloaded.api_secret == SECRET


def test_the_database_column_holds_a_fernet_token_not_the_text():
    account = BrokerAccountFactory.create(kite=True, api_secret=SECRET)

    stored = raw_column(account, "api_secret")

    assert SECRET not in stored
    assert stored.startswith("gAAAAA")  # Fernet's version byte, base64
    assert field_fernet().decrypt(stored.encode()).decode() == SECRET


def test_the_same_text_is_stored_as_a_different_token_each_time():
    first = BrokerAccountFactory.create(kite=True, api_secret=SECRET)
    second = BrokerAccountFactory.create(kite=True, api_secret=SECRET)

    assert raw_column(first, "api_secret") != raw_column(second, "api_secret")


def test_an_empty_secret_is_stored_empty_and_stays_queryable():
    account = BrokerAccountFactory.create(access_token="")

    assert raw_column(account, "access_token") == ""
    assert BrokerAccount.objects.filter(access_token="").get() == account


def test_comparing_an_encrypted_field_with_a_value_is_refused():
    with pytest.raises(FieldError):
        list(BrokerAccount.objects.filter(api_secret=SECRET))
    with pytest.raises(FieldError):
        list(BrokerAccount.objects.filter(api_secret__icontains="s3"))


def test_a_value_no_key_decrypts_raises_instead_of_returning_ciphertext():
    account = BrokerAccountFactory.create(kite=True, api_secret=SECRET)

    with (
        override_settings(FIELD_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]),
        pytest.raises(DecryptionError, match=r"BrokerAccount\.api_key"),
    ):
        BrokerAccount.objects.get(pk=account.pk)


def test_changing_secret_key_leaves_credentials_readable():
    account = BrokerAccountFactory.create(kite=True, api_secret=SECRET)

    with override_settings(SECRET_KEY="a-completely-different-secret-key-after-rotation"):
        reloaded = BrokerAccount.objects.get(pk=account.pk)

    assert reloaded.api_secret == SECRET


def test_the_fernet_is_built_once_per_key_set():
    key = Fernet.generate_key().decode()

    with override_settings(FIELD_ENCRYPTION_KEYS=[key]):
        first, second = field_fernet(), field_fernet()
    with override_settings(FIELD_ENCRYPTION_KEYS=[key, Fernet.generate_key().decode()]):
        other = field_fernet()

    assert first is second
    assert other is not first


def test_a_malformed_key_is_a_configuration_error_that_does_not_echo_the_key():
    with (
        override_settings(FIELD_ENCRYPTION_KEYS=["not-a-fernet-key-but-secret"]),
        pytest.raises(ImproperlyConfigured) as error,
    ):
        field_fernet()

    assert "not-a-fernet-key-but-secret" not in str(error.value)


def test_dumpdata_writes_the_secrets_as_ciphertext_only():
    account = BrokerAccountFactory.create(kite=True, api_key="canaryKEY42", api_secret=SECRET, access_token="canaryTOK")
    out = io.StringIO()

    call_command("dumpdata", "brokers.brokeraccount", format="json", stdout=out)

    dumped = out.getvalue()
    for secret in ("canaryKEY42", SECRET, "canaryTOK"):
        assert secret not in dumped
    (row,) = [entry for entry in json.loads(dumped) if entry["pk"] == account.pk]
    assert row["fields"]["api_secret"].startswith("fernet:gAAAAA")


@pytest.mark.parametrize("format_", ["json", "xml", "python"])
def test_every_serializer_format_gives_ciphertext_and_loads_back_the_text(format_):
    account = BrokerAccountFactory.create(kite=True, api_secret=SECRET)

    dumped = serializers.serialize(format_, BrokerAccount.objects.filter(pk=account.pk))

    assert SECRET not in str(dumped)
    BrokerAccount.objects.filter(pk=account.pk).update(api_secret="")
    (loaded,) = serializers.deserialize(format_, dumped)
    loaded.save()
    assert BrokerAccount.objects.get(pk=account.pk).api_secret == SECRET
    assert SECRET not in raw_column(account, "api_secret")


def test_a_fixture_encrypted_under_a_key_no_longer_held_is_refused():
    account = BrokerAccountFactory.create(kite=True, api_secret=SECRET)
    dumped = serializers.serialize("json", BrokerAccount.objects.filter(pk=account.pk))

    with (
        override_settings(FIELD_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]),
        pytest.raises(serializers.base.DeserializationError),
    ):
        list(serializers.deserialize("json", dumped))
