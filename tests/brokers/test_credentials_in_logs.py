"""Whatever a submit flow logs, through the project's own handler (JSON formatter and
redaction filter) at DEBUG with SQL included, no credential value appears."""

import io
import json
import logging

import pytest
from django.db import connection

from brokers.adapters.base import AccountProfile
from tests.log_capture import project_handler

pytestmark = pytest.mark.django_db

ACCOUNTS = "/api/v1/broker-accounts/"
API_KEY = "apikeyZ9x8c7v6"
API_SECRET = "apisecretQ1w2e3r4t5"
REQUEST_TOKEN = "requesttokenM4n5b6"
ACCESS_TOKEN = "accesstokenP0o9i8u7"
CREDENTIALS = (API_KEY, API_SECRET, REQUEST_TOKEN, ACCESS_TOKEN)


class LoginAdapter:
    kind = "kite"

    def __init__(self, account):
        self.account = account

    def exchange_request_token(self, request_token, api_secret):
        logging.getLogger("brokers.adapters.kite").debug(
            "POST /session/token api_key=%s request_token=%s", self.account.api_key, request_token
        )
        return ACCESS_TOKEN

    def validate_credentials(self):
        logging.getLogger("brokers.adapters.kite").debug(
            "GET /user/profile", extra={"authorization": f"token {self.account.api_key}:{self.account.access_token}"}
        )
        return AccountProfile(broker_user_id="AB1234", user_name="Trader")


@pytest.fixture
def project_log_output():
    """The configured stdout handler's formatter and filters, writing to a buffer."""
    buffer = io.StringIO()
    handler = project_handler(buffer)
    root, sql = logging.getLogger(), logging.getLogger("django.db.backends")
    levels = (root.level, sql.level)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    sql.setLevel(logging.DEBUG)
    connection.force_debug_cursor = True  # every SQL statement and its parameters are logged
    yield buffer
    connection.force_debug_cursor = False
    root.removeHandler(handler)
    root.setLevel(levels[0])
    sql.setLevel(levels[1])


def test_a_kite_submit_and_login_flow_logs_no_credential(auth_client, monkeypatch, project_log_output):
    monkeypatch.setattr("brokers.services.adapter_for", LoginAdapter)

    submitted = auth_client.post(
        ACCOUNTS, {"kind": "kite", "label": "Zerodha", "api_key": API_KEY, "api_secret": API_SECRET}, format="json"
    )
    account_url = f"{ACCOUNTS}{submitted.json()['id']}/"
    auth_client.get(account_url + "login-url/")
    session = auth_client.post(account_url + "session/", {"request_token": REQUEST_TOKEN}, format="json")
    auth_client.post(ACCOUNTS, {"kind": "paper", "label": "P", "api_secret": API_SECRET}, format="json")
    auth_client.get(account_url)

    assert (submitted.status_code, session.status_code) == (201, 200)
    output = project_log_output.getvalue()
    lines = [json.loads(line) for line in output.splitlines()]
    assert {"U3", "B1"} <= {line.get("event") for line in lines}
    assert any(line["logger"] == "django.db.backends" for line in lines)
    leaked = [secret for secret in CREDENTIALS if secret in output]
    assert leaked == []
