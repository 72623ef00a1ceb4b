"""Register and login are rate-limited per client address and per account."""

import pytest
from django.test import override_settings
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

pytestmark = pytest.mark.django_db

LOGIN = "/api/v1/auth/login/"


@pytest.fixture
def rates(monkeypatch):
    def set_rates(**rates: str) -> None:
        monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {**api_settings.DEFAULT_THROTTLE_RATES, **rates})

    return set_rates


def test_login_is_throttled_per_account_across_addresses(api_client, user, rates):
    rates(auth_account="3/min", auth_ip="100/min")
    statuses = [
        api_client.post(
            LOGIN, {"email": user.email, "password": "bad password here"}, format="json", REMOTE_ADDR=f"10.0.0.{i}"
        ).status_code
        for i in range(4)
    ]

    assert statuses == [401, 401, 401, 429]


@override_settings(AXES_FAILURE_LIMIT=100)
def test_login_is_throttled_per_address_across_accounts(api_client, rates):
    rates(auth_account="100/min", auth_ip="3/min")
    responses = [
        api_client.post(LOGIN, {"email": f"u{i}@example.com", "password": "bad password here"}, format="json")
        for i in range(4)
    ]

    assert [r.status_code for r in responses] == [401, 401, 401, 429]
    assert responses[-1].json()["error"]["code"] == "throttled"
    assert int(responses[-1]["Retry-After"]) > 0


@pytest.mark.parametrize("path", ["/api/v1/auth/refresh/", "/api/v1/auth/logout/"])
def test_refresh_and_logout_are_throttled_per_address(api_client, rates, path):
    rates(auth_token="3/min")

    statuses = [api_client.post(path, {"refresh": "not.a.token"}, format="json").status_code for _ in range(4)]

    assert statuses == [401, 401, 401, 429]
