"""Operators see broker accounts in the admin, never a credential or its ciphertext."""

import pytest
from django.db import connection
from django.test import Client

from brokers.models import BrokerAccount
from monitoring.models import EventLog
from tests.factories import BrokerAccountFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client() -> Client:
    client = Client()
    client.force_login(UserFactory.create(is_staff=True, is_superuser=True))
    return client


def ciphertexts(account: BrokerAccount) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT api_key, api_secret, access_token FROM brokers_brokeraccount WHERE id = %s", [account.pk]
        )
        return list(cursor.fetchone())


def test_the_account_page_says_set_or_not_set_and_shows_no_secret(operator_client):
    account = BrokerAccountFactory.create(kite=True, access_token="")
    hidden = [account.api_key, account.api_secret, *filter(None, ciphertexts(account))]

    page = operator_client.get(f"/admin/brokers/brokeraccount/{account.pk}/change/")
    listing = operator_client.get("/admin/brokers/brokeraccount/")

    assert page.status_code == listing.status_code == 200
    html = page.content.decode() + listing.content.decode()
    assert [value for value in hidden if value in html] == []
    assert page.content.decode().count(">set<") == 2
    assert ">not set<" in page.content.decode()


def test_the_expire_action_goes_through_the_service(operator_client):
    account = BrokerAccountFactory.create(kite=True)

    operator_client.post(
        "/admin/brokers/brokeraccount/", {"action": "mark_token_expired", "_selected_action": [account.pk]}
    )

    assert BrokerAccount.objects.get(pk=account.pk).status == "token_expired"
    assert EventLog.objects.filter(user=account.owner, code="L4").exists()
