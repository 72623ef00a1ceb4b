"""The user's sessions (one a login): listed with their device and last use, never with a
token; one ended by its id, and another user's id is a 404."""

import uuid

import pytest
from django.db import connection

from algotrader.users.models import RefreshTokenRecord

pytestmark = pytest.mark.django_db

LOGIN = "/api/v1/auth/login/"
REFRESH = "/api/v1/auth/refresh/"
SESSIONS = "/api/v1/auth/sessions/"
PHONE = "AlgoTrader/2.1 (Android 14; Pixel 8)"
LAPTOP = "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"


def login(client, email: str, password: str, *, agent: str, address: str = "127.0.0.1"):
    response = client.post(
        LOGIN, {"email": email, "password": password}, format="json", HTTP_USER_AGENT=agent, REMOTE_ADDR=address
    )
    assert response.status_code == 200
    return response.json()


def as_bearer(client, tokens: dict[str, str]):
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    return client


def test_list_shows_each_login_with_its_device_address_and_which_is_current(api_client, user, password):
    phone = login(api_client, user.email, password, agent=PHONE, address="203.0.113.7")
    login(api_client, user.email, password, agent=LAPTOP, address="2001:db8::1")

    response = as_bearer(api_client, phone).get(SESSIONS)

    assert response.status_code == 200
    page = response.json()
    assert page["count"] == 2
    newest, oldest = page["results"]
    assert (newest["user_agent"], newest["ip_address"], newest["current"]) == (LAPTOP, "2001:db8::1", False)
    assert (oldest["user_agent"], oldest["ip_address"], oldest["current"]) == (PHONE, "203.0.113.7", True)
    assert set(oldest) == {"id", "user_agent", "ip_address", "started_at", "last_used_at", "expires_at", "current"}


def test_a_refresh_is_the_sessions_last_use_and_keeps_its_start(api_client, user, password):
    tokens = login(api_client, user.email, password, agent=PHONE)
    [before] = as_bearer(api_client, tokens).get(SESSIONS).json()["results"]

    rotated = api_client.post(REFRESH, {"refresh": tokens["refresh"]}, format="json", HTTP_USER_AGENT=LAPTOP).json()
    [after] = as_bearer(api_client, rotated).get(SESSIONS).json()["results"]

    assert after["id"] == before["id"]
    assert after["started_at"] == before["started_at"]
    assert after["last_used_at"] > before["last_used_at"]
    assert after["user_agent"] == LAPTOP
    assert after["current"] is True


def test_the_list_holds_no_token_nor_its_hash(api_client, user, password):
    tokens = login(api_client, user.email, password, agent=PHONE)

    body = as_bearer(api_client, tokens).get(SESSIONS).content.decode()

    record = RefreshTokenRecord.objects.get(user=user)
    for secret in (tokens["refresh"], tokens["refresh"].split(".")[2], record.token_sha256, record.jti):
        assert secret not in body


def test_revoking_a_session_ends_that_login_only(api_client, user, password):
    phone = login(api_client, user.email, password, agent=PHONE)
    laptop = login(api_client, user.email, password, agent=LAPTOP)
    laptop_id = next(s["id"] for s in as_bearer(api_client, phone).get(SESSIONS).json()["results"] if not s["current"])

    response = api_client.delete(f"{SESSIONS}{laptop_id}/")

    assert response.status_code == 204
    assert api_client.post(REFRESH, {"refresh": laptop["refresh"]}, format="json").status_code == 401
    assert [s["user_agent"] for s in api_client.get(SESSIONS).json()["results"]] == [PHONE]
    assert api_client.post(REFRESH, {"refresh": phone["refresh"]}, format="json").status_code == 200
    assert api_client.delete(f"{SESSIONS}{laptop_id}/").status_code == 404


def test_another_users_session_is_404_and_stays(api_client, user, password):
    from tests.factories import UserFactory

    other = UserFactory.create(password=password)
    theirs = login(api_client, other.email, password, agent=LAPTOP)
    their_id = as_bearer(api_client, theirs).get(SESSIONS).json()["results"][0]["id"]
    mine = login(api_client, user.email, password, agent=PHONE)

    response = as_bearer(api_client, mine).delete(f"{SESSIONS}{their_id}/")
    listed = [s["id"] for s in api_client.get(SESSIONS).json()["results"]]

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert their_id not in listed
    assert api_client.post(REFRESH, {"refresh": theirs["refresh"]}, format="json").status_code == 200


# A fixed id: every pytest-xdist worker must collect the same parameters.
@pytest.mark.parametrize("session_id", ["6abed9eb-3cb2-4bab-9c37-f5a3d007f633", "not-a-uuid", "1"])
def test_an_unknown_session_is_404(auth_client, session_id):
    response = auth_client.delete(f"{SESSIONS}{session_id}/")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_sessions_need_a_login(api_client):
    assert api_client.get(SESSIONS).status_code == 401
    assert api_client.delete(f"{SESSIONS}{uuid.uuid4()}/").status_code == 401


def test_sessions_page_with_bounded_limits(api_client, user, password):
    tokens = [login(api_client, user.email, password, agent=f"device {n}") for n in range(3)]
    client = as_bearer(api_client, tokens[0])

    page = client.get(SESSIONS, {"limit": 2}).json()
    bad = client.get(SESSIONS, {"limit": "lots"})

    assert (page["count"], len(page["results"])) == (3, 2)
    assert bad.status_code == 400
    assert list(bad.json()["error"]["fields"]) == ["limit"]


def test_a_long_user_agent_is_cut_and_a_bad_forwarded_address_is_not_stored(api_client, user, password, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    api_client.post(
        LOGIN,
        {"email": user.email, "password": password},
        format="json",
        HTTP_USER_AGENT="x" * 1000,
        HTTP_X_FORWARDED_FOR="not-an-address",
    )

    with connection.cursor() as cursor:
        cursor.execute("SELECT length(user_agent), ip_address FROM users_refreshtokenrecord")
        assert cursor.fetchall() == [(256, None)]
