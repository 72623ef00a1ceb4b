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


def test_no_account_page_or_action_answer_shows_a_secret(operator_client):
    accounts = [BrokerAccountFactory.create(kite=True) for _ in range(3)]
    hidden = [
        secret
        for account in accounts
        for secret in [account.api_key, account.api_secret, account.access_token, *ciphertexts(account)]
    ]
    selected = {"_selected_action": [account.pk for account in accounts]}
    listing = "/admin/brokers/brokeraccount/"

    pages = [
        operator_client.get("/admin/brokers/brokeraccount/"),
        *(operator_client.get(f"/admin/brokers/brokeraccount/{a.pk}/change/") for a in accounts),
        *(operator_client.get(f"/admin/brokers/brokeraccount/{a.pk}/history/") for a in accounts),
        *(
            operator_client.post(listing, {"action": action, **selected}, follow=True)
            for action in ("halt_entries", "resume_entries", "mark_token_expired")
        ),
        operator_client.get("/admin/execution/entryhalt/"),
    ]

    searched = operator_client.get("/admin/brokers/brokeraccount/", {"q": accounts[0].api_key})

    assert {page.status_code for page in pages} == {200}
    html = "".join(page.content.decode() for page in pages)
    assert [secret for secret in hidden if secret in html] == []
    assert list(searched.context["cl"].result_list) == []  # a secret is no search key either


def test_the_halt_and_resume_actions_go_through_the_entries_services(operator_client):
    from execution.models import EntryHalt
    from execution.services import safety

    halted, other = BrokerAccountFactory.create_batch(2)

    operator_client.post("/admin/brokers/brokeraccount/", {"action": "halt_entries", "_selected_action": [halted.pk]})

    assert safety.entries_halted(account=halted) is not None
    assert safety.entries_halted(account=other) is None

    safety.entries_halt(reason="kill switch")
    resumed = operator_client.post(
        "/admin/brokers/brokeraccount/", {"action": "resume_entries", "_selected_action": [halted.pk]}, follow=True
    )

    assert list(EntryHalt.objects.values_list("account", flat=True)) == [None]
    assert [str(m) for m in resumed.context["messages"]][-2:] == [
        f"New BUYs resumed on {halted}.",
        "New BUYs remain halted on every account (kill switch).",
    ]
