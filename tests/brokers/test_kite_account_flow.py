"""A Kite account over the API against the Kite simulator: keys validated at once
(U3, B1), refused keys stored nowhere (B2), and the daily login (login URL, request
token exchange). No key, secret or token ever reaches a log line."""

import io
import logging
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from django.conf import settings as django_settings

from brokers.models import BrokerAccount
from monitoring.logging import RedactSecretsFilter
from monitoring.models import EventLog
from tests.brokers.kite_sim_fixtures import kite_sim, sim_account  # noqa: F401

pytestmark = pytest.mark.django_db
URL = "/api/v1/broker-accounts/"


@pytest.fixture(autouse=True)
def kite_points_at_the_simulator(settings, kite_sim):  # noqa: F811
    settings.KITE_API_ROOT = kite_sim.api_root
    settings.KITE_WS_ROOT = kite_sim.ws_root
    settings.KITE_LOGIN_URL = f"{kite_sim.api_root}/connect/login"


@pytest.fixture
def production_log():
    """Everything logged during the test, formatted exactly as the stdout handler does."""
    config: dict[str, Any] = django_settings.LOGGING
    formatter_config = dict(config["formatters"]["json"])
    formatter_class = formatter_config.pop("()")
    from django.utils.module_loading import import_string

    handler = logging.StreamHandler(stream := io.StringIO())
    handler.setFormatter(import_string(formatter_class)(**formatter_config))
    handler.addFilter(RedactSecretsFilter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def test_valid_kite_keys_make_an_active_account_with_u3_and_b1(auth_client, user, sim_account):  # noqa: F811
    body = {
        "kind": "kite",
        "label": "my zerodha",
        "api_key": sim_account.api_key,
        "api_secret": sim_account.api_secret,
        "access_token": sim_account.access_token,
    }

    response = auth_client.post(URL, body, format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "active"
    assert not {"api_key", "api_secret", "access_token"} & set(response.json())
    assert list(EventLog.objects.filter(user=user).values_list("code", flat=True).order_by("id")) == ["U3", "B1"]


def test_a_refused_token_stores_nothing_and_records_b2(auth_client, user, sim_account):  # noqa: F811
    body = {
        "kind": "kite",
        "label": "wrong",
        "api_key": sim_account.api_key,
        "api_secret": sim_account.api_secret,
        "access_token": "not-the-token",
    }

    response = auth_client.post(URL, body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "broker_auth_failed"
    assert response.json()["error"]["message"]
    assert not BrokerAccount.objects.exists()
    assert EventLog.objects.filter(user=user, code="B2").count() == 1


def test_the_daily_login_exchanges_the_request_token_for_a_session(auth_client, sim_account, production_log):  # noqa: F811
    submitted = auth_client.post(
        URL,
        {"kind": "kite", "label": "daily", "api_key": sim_account.api_key, "api_secret": sim_account.api_secret},
        format="json",
    ).json()
    assert submitted["status"] == "login_required"

    login_url = auth_client.get(f"{URL}{submitted['id']}/login-url/").json()["login_url"]
    redirect = requests.get(login_url, allow_redirects=False, timeout=10)
    request_token = parse_qs(urlparse(redirect.headers["Location"]).query)["request_token"][0]
    session = auth_client.post(f"{URL}{submitted['id']}/session/", {"request_token": request_token}, format="json")
    replayed = auth_client.post(f"{URL}{submitted['id']}/session/", {"request_token": request_token}, format="json")

    assert redirect.status_code in (301, 302, 303, 307)
    assert session.status_code == 200, session.json()
    assert session.json()["status"] == "active"
    assert session.json()["token_expires_at"]
    assert replayed.status_code == 400  # a request token works once
    log = production_log.getvalue()
    assert log, "the flow logged nothing: the capture is not wired"
    for secret in (sim_account.api_secret, sim_account.access_token, request_token):
        assert secret not in log
    account = BrokerAccount.objects.get(pk=submitted["id"])
    assert account.access_token and account.access_token not in log


def test_a_wrong_secret_fails_the_login_checksum_with_b2(auth_client, user, sim_account):  # noqa: F811
    submitted = auth_client.post(
        URL,
        {"kind": "kite", "label": "typo", "api_key": sim_account.api_key, "api_secret": "wrong-secret-value"},
        format="json",
    ).json()
    login_url = auth_client.get(f"{URL}{submitted['id']}/login-url/").json()["login_url"]
    location = requests.get(login_url, allow_redirects=False, timeout=10).headers["Location"]
    request_token = parse_qs(urlparse(location).query)["request_token"][0]

    response = auth_client.post(f"{URL}{submitted['id']}/session/", {"request_token": request_token}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "broker_auth_failed"
    assert BrokerAccount.objects.get(pk=submitted["id"]).status == "login_required"
    assert EventLog.objects.filter(user=user, code="B2").count() == 1
