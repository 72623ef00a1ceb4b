"""The broker accounts API: submit (U3 then B1/B2), list, detail, delete, Kite login URL,
the one-tap login link, and session; credentials are write-only and other users' accounts do not exist."""

from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from django.utils import timezone

from brokers.adapters.base import AccountProfile
from brokers.exceptions import BrokerAuthError
from brokers.models import BrokerAccount
from monitoring.models import EventLog
from tests.factories import BrokerAccountFactory
from tests.strategies.factories_scheduling import strategy_create

pytestmark = pytest.mark.django_db

ACCOUNTS = "/api/v1/broker-accounts/"


def detail(account_id: int) -> str:
    return f"{ACCOUNTS}{account_id}/"


class RefusingAdapter:
    kind = "kite"

    def __init__(self, account):
        self.account = account

    def validate_credentials(self):
        raise BrokerAuthError("Incorrect `api_key` or `access_token`.", broker_error_type="TokenException")


def test_submitting_a_paper_account_stores_it_active_with_u3_and_b1(auth_client, user):
    response = auth_client.post(ACCOUNTS, {"kind": "paper", "label": "Demo"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert (body["kind"], body["label"], body["status"], body["can_enter"]) == ("paper", "Demo", "active", True)
    assert BrokerAccount.objects.get(pk=body["id"]).owner == user
    assert list(EventLog.objects.filter(user=user).order_by("id").values_list("code", flat=True)) == ["U3", "B1"]


def test_a_kite_account_without_an_access_token_is_stored_as_login_required(auth_client, user):
    response = auth_client.post(
        ACCOUNTS, {"kind": "kite", "label": "Zerodha", "api_key": "kk1234", "api_secret": "ss5678"}, format="json"
    )

    assert response.status_code == 201
    assert response.json()["status"] == "login_required"
    assert response.json()["can_enter"] is False
    assert list(EventLog.objects.filter(user=user).values_list("code", flat=True)) == ["U3"]


def test_credentials_the_broker_refuses_are_not_stored_and_say_why(auth_client, user, monkeypatch):
    monkeypatch.setattr("brokers.services.adapter_for", RefusingAdapter)

    response = auth_client.post(
        ACCOUNTS,
        {"kind": "kite", "label": "Zerodha", "api_key": "kk1234", "api_secret": "ss5678", "access_token": "tt9"},
        format="json",
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "broker_auth_failed"
    assert error["message"] == "The broker refused the credentials: Incorrect `api_key` or `access_token`."
    assert not BrokerAccount.objects.exists()
    assert EventLog.objects.get(user=user, code="B2").payload["reason"] == "Incorrect `api_key` or `access_token`."


def test_list_and_detail_never_contain_a_credential(auth_client, user):
    account = BrokerAccountFactory.create(owner=user, kite=True)
    secrets = [account.api_key, account.api_secret, account.access_token]

    listed = auth_client.get(ACCOUNTS)
    shown = auth_client.get(detail(account.pk))

    assert listed.status_code == shown.status_code == 200
    for response in (listed, shown):
        assert not any(secret in response.content.decode() for secret in secrets)
    assert not {"api_key", "api_secret", "access_token"} & set(shown.json())
    assert (shown.json()["api_key_set"], shown.json()["api_secret_set"]) == (True, True)


def test_the_list_holds_only_the_users_own_accounts(auth_client, user):
    own = BrokerAccountFactory.create(owner=user)
    BrokerAccountFactory.create()

    response = auth_client.get(ACCOUNTS)

    assert [account["id"] for account in response.json()] == [own.pk]


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("get", "", None),
        ("delete", "", None),
        ("get", "login-url/", None),
        ("get", "kite-login/", None),
        ("post", "session/", {"request_token": "rt123"}),
    ],
)
def test_another_users_account_is_not_found_for_every_verb(auth_client, method, suffix, body):
    theirs = BrokerAccountFactory.create(kite=True)

    response = getattr(auth_client, method)(detail(theirs.pk) + suffix, body, format="json")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "broker_account_not_found"
    assert BrokerAccount.objects.get(pk=theirs.pk).status == "active"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"label": "x"}, "kind"),
        ({"kind": "etrade", "label": "x"}, "kind"),
        ({"kind": "paper"}, "label"),
        ({"kind": "paper", "label": ""}, "label"),
        ({"kind": "paper", "label": "x" * 65}, "label"),
        ({"kind": "paper", "label": "x", "api_secret": "should-not-be-here"}, "api_secret"),
        ({"kind": "kite", "label": "x", "api_secret": "ss"}, "api_key"),
        ({"kind": "kite", "label": "x", "api_key": "kk"}, "api_secret"),
        ({"kind": "kite", "label": "x", "api_key": "k" * 129, "api_secret": "ss"}, "api_key"),
        ({"kind": "paper", "label": ["not", "text"]}, "label"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(auth_client, body, field):
    response = auth_client.post(ACCOUNTS, body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert response.json()["error"]["fields"][field]
    assert not BrokerAccount.objects.exists()


def test_a_label_already_used_by_the_user_is_a_400_on_the_label(auth_client, user):
    BrokerAccountFactory.create(owner=user, label="Main")

    response = auth_client.post(ACCOUNTS, {"kind": "paper", "label": " Main "}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "label_taken"
    assert response.json()["error"]["fields"]["label"]


def test_the_same_label_is_free_for_another_user(auth_client):
    BrokerAccountFactory.create(label="Main")

    response = auth_client.post(ACCOUNTS, {"kind": "paper", "label": "Main"}, format="json")

    assert response.status_code == 201


def test_a_body_that_is_not_json_is_a_400(auth_client):
    response = auth_client.post(ACCOUNTS, "{nope", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"


def test_a_session_without_a_request_token_is_a_400_naming_it(auth_client, user):
    account = BrokerAccountFactory.create(owner=user, kite=True, status="login_required")

    response = auth_client.post(detail(account.pk) + "session/", {}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"]["request_token"]


def test_the_api_needs_a_logged_in_user(api_client):
    assert api_client.get(ACCOUNTS).status_code == 401
    assert api_client.post(ACCOUNTS, {"kind": "paper", "label": "x"}, format="json").status_code == 401


def test_deleting_an_account_removes_it(auth_client, user):
    account = BrokerAccountFactory.create(owner=user)

    response = auth_client.delete(detail(account.pk))

    assert response.status_code == 204
    assert not BrokerAccount.objects.filter(pk=account.pk).exists()


def test_an_account_a_running_strategy_trades_on_is_not_deleted(auth_client, user):
    account = BrokerAccountFactory.create(owner=user, kite=True)
    strategy_create(
        buy_fire_at=timezone.now() + timedelta(minutes=5),
        sell_fire_at=timezone.now() + timedelta(minutes=9),
        account=account,
        status="RUNNING",
    )

    response = auth_client.delete(detail(account.pk))

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "broker_account_in_use"
    assert BrokerAccount.objects.get(pk=account.pk).access_token  # untouched


def test_an_account_with_strategies_on_record_is_erased_and_hidden_not_deleted(auth_client, user):
    account = BrokerAccountFactory.create(owner=user, kite=True, label="Main")
    ended = strategy_create(
        buy_fire_at=timezone.now() - timedelta(minutes=9),
        sell_fire_at=timezone.now() - timedelta(minutes=5),
        account=account,
        status="EXITED",
        position="SOLD",
    )

    response = auth_client.delete(detail(account.pk))

    assert response.status_code == 204
    kept = BrokerAccount.objects.get(pk=account.pk)  # the ended strategy's account, for the record
    assert (kept.api_key, kept.api_secret, kept.access_token, kept.status) == ("", "", "", "disabled")
    assert kept.deleted_at is not None and ended.broker_account_id == kept.pk
    assert auth_client.get(detail(account.pk)).status_code == 404
    assert auth_client.get(ACCOUNTS).json() == []
    again = auth_client.post(ACCOUNTS, {"kind": "paper", "label": "Main"}, format="json")
    assert again.status_code == 201  # its label is free again


def test_the_login_url_of_a_kite_account_is_kites_login_page_for_its_api_key(auth_client, user, settings):
    settings.KITE_LOGIN_URL = "https://kite.example/connect/login"
    account = BrokerAccountFactory.create(owner=user, kite=True, api_key="myapikey42")

    response = auth_client.get(detail(account.pk) + "login-url/")

    assert response.status_code == 200
    assert response.json() == {"login_url": "https://kite.example/connect/login?v=3&api_key=myapikey42"}


def test_the_one_tap_login_link_is_kites_login_page_carrying_a_state(auth_client, user, settings):
    settings.KITE_LOGIN_URL = "https://kite.example/connect/login"
    account = BrokerAccountFactory.create(owner=user, kite=True, api_key="myapikey42")

    response = auth_client.get(detail(account.pk) + "kite-login/")

    assert response.status_code == 200
    login_url = urlparse(response.json()["login_url"])
    query = parse_qs(login_url.query)
    assert (login_url.netloc, login_url.path) == ("kite.example", "/connect/login")
    assert (query["v"], query["api_key"]) == (["3"], ["myapikey42"])
    assert set(parse_qs(query["redirect_params"][0])) == {"state"}
    assert response.json()["expires_at"]


def test_a_disabled_account_gets_no_one_tap_login_link(auth_client, user):
    account = BrokerAccountFactory.create(owner=user, kite=True, status="disabled")

    response = auth_client.get(detail(account.pk) + "kite-login/")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "broker_account_disabled"


@pytest.mark.parametrize("suffix", ["login-url/", "kite-login/"])
def test_a_paper_account_has_no_login_url(auth_client, user, suffix):
    account = BrokerAccountFactory.create(owner=user)

    response = auth_client.get(detail(account.pk) + suffix)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "login_not_supported"


class SessionAdapter:
    kind = "kite"
    issued = "fresh-access-token-0001"

    def __init__(self, account):
        self.account = account

    def exchange_request_token(self, request_token, api_secret):
        assert (request_token, api_secret) == ("rt123", self.account.api_secret)
        return self.issued

    def validate_credentials(self):
        assert self.account.access_token == self.issued
        return AccountProfile(broker_user_id="AB1234", user_name="Trader")


def test_a_kite_session_makes_the_account_active_without_returning_the_token(auth_client, user, monkeypatch):
    monkeypatch.setattr("brokers.services.adapter_for", SessionAdapter)
    account = BrokerAccountFactory.create(owner=user, kite=True, status="login_required", access_token="")

    response = auth_client.post(detail(account.pk) + "session/", {"request_token": "rt123"}, format="json")

    assert response.status_code == 200
    assert response.json()["status"] == "active"
    assert response.json()["broker_user_id"] == "AB1234"
    assert SessionAdapter.issued not in response.content.decode()
    assert BrokerAccount.objects.get(pk=account.pk).access_token == SessionAdapter.issued
    assert EventLog.objects.filter(user=user, code="B1").count() == 1


def test_protective_stops_are_on_by_default_and_can_be_switched_off_per_account(auth_client):
    default = auth_client.post(ACCOUNTS, {"kind": "paper", "label": "on"}, format="json")
    off = auth_client.post(ACCOUNTS, {"kind": "paper", "label": "off", "protective_stops": False}, format="json")

    assert (default.json()["protective_stops"], off.json()["protective_stops"]) == (True, False)
