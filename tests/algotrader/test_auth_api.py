"""The auth API over HTTP: register (U1), login (U2), refresh rotation, logout, me."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from rest_framework_simplejwt.tokens import AccessToken

from algotrader.queues import TaskName
from algotrader.users import services
from algotrader.users.models import User
from algotrader.users.tasks import account_exists_notify_task
from monitoring.models import EventLog

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/auth/register/"
LOGIN = "/api/v1/auth/login/"
REFRESH = "/api/v1/auth/refresh/"
LOGOUT = "/api/v1/auth/logout/"
ME = "/api/v1/auth/me/"


def login(client, email: str, password: str):
    return client.post(LOGIN, {"email": email, "password": password}, format="json")


def test_register_creates_user_and_records_u1(api_client, password):
    response = api_client.post(REGISTER, {"email": "New.Trader@Example.com", "password": password}, format="json")

    assert response.status_code == 202
    assert response.json() == {"email": "new.trader@example.com"}
    user = User.objects.get(email="new.trader@example.com")
    assert user.check_password(password)
    assert EventLog.objects.filter(code="U1", user=user).count() == 1


def test_register_answers_a_taken_email_as_a_new_one_and_mails_its_owner(
    api_client, user, password, mailoutbox, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    monkeypatch.setattr(services, "task_send", lambda name, args: sent.append((name, args)))

    with django_capture_on_commit_callbacks(execute=True):
        taken = api_client.post(REGISTER, {"email": user.email.upper(), "password": password}, format="json")
    fresh = api_client.post(REGISTER, {"email": "someone.new@example.com", "password": password}, format="json")
    for name, args in sent:
        assert name == TaskName.ACCOUNT_EXISTS_NOTIFY
        account_exists_notify_task(*args)

    assert (taken.status_code, fresh.status_code) == (202, 202)
    assert taken.json().keys() == fresh.json().keys() == {"email"}
    assert User.objects.filter(email__iexact=user.email).count() == 1
    assert [message.to for message in mailoutbox] == [[user.email]]
    assert "already has one" in mailoutbox[0].body


@pytest.mark.parametrize("weak", ["short1", "password123", "12345678901234", " " * 16, "\t \n" * 5, "z" * 24])
def test_register_refuses_weak_passwords_through_django_validators(api_client, weak):
    response = api_client.post(REGISTER, {"email": "a@example.com", "password": weak}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"]["password"]
    assert not User.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "email"),
        ({"email": "a@example.com"}, "password"),
        ({"email": "not-an-email", "password": "correct horse battery"}, "email"),
        ({"email": "a" * 250 + "@example.com", "password": "correct horse battery"}, "email"),
        ({"email": "a@example.com", "password": "x" * 129}, "password"),
        ({"email": ["a@example.com"], "password": "correct horse battery"}, "email"),
        ({"email": "a@example.com", "password": {"p": 1}}, "password"),
        ({"email": None, "password": "correct horse battery"}, "email"),
        ({"email": "a@example.com", "password": "nul\x00byte in here"}, "password"),
    ],
)
def test_register_bad_input_is_400_with_field_messages(api_client, body, field):
    response = api_client.post(REGISTER, body, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["fields"][field]


@pytest.mark.parametrize("url", [REGISTER, LOGIN, REFRESH])
def test_malformed_json_is_400_malformed_request(api_client, url):
    response = api_client.generic("POST", url, '{"email": "a@example.com", ', content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"


@pytest.mark.parametrize("raw", ["[1, 2, 3]", '"just a string"', "null", "42"])
def test_json_that_is_not_an_object_is_400_invalid(api_client, raw):
    response = api_client.generic("POST", REGISTER, raw, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert response.json()["error"]["fields"]["non_field_errors"]


def test_non_json_content_type_is_415(api_client):
    response = api_client.generic("POST", REGISTER, "email=a@example.com", content_type="text/plain")

    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_login_issues_short_lived_tokens_and_records_u2(api_client, user, password):
    response = login(api_client, user.email, password)

    assert response.status_code == 200
    body = response.json()
    access = AccessToken(body["access"])
    assert access["user_id"] == str(user.pk)
    assert timedelta(seconds=access["exp"] - access["iat"]) <= timedelta(minutes=5)
    assert EventLog.objects.filter(code="U2", user=user).count() == 1


def test_login_email_is_case_insensitive(api_client, user, password):
    assert login(api_client, user.email.upper(), password).status_code == 200


def test_login_with_wrong_password_is_401(api_client, user):
    response = login(api_client, user.email, "wrong password entirely")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"
    assert not EventLog.objects.filter(code="U2").exists()


def test_login_unknown_email_looks_like_a_wrong_password(api_client):
    response = login(api_client, "nobody@example.com", "whatever password")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"


def test_ten_wrong_passwords_lock_the_account_out(api_client, user, password):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert login(api_client, user.email, "wrong password entirely").status_code == 401

    tenth = login(api_client, user.email, "wrong password entirely")
    with_right_password = login(api_client, user.email, password)

    assert tenth.status_code == 429
    assert with_right_password.status_code == 429
    assert with_right_password.json()["error"]["code"] == "account_locked"
    assert "access" not in with_right_password.json()


def test_lockout_of_one_account_leaves_others_alone_from_another_address(api_client, user, password):
    other = User.objects.create_user(email="other@example.com", password=password)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(api_client, user.email, "wrong password entirely")

    response = api_client.post(
        LOGIN, {"email": other.email, "password": password}, format="json", REMOTE_ADDR="10.9.8.7"
    )

    assert response.status_code == 200


def test_failures_from_one_address_do_not_lock_the_owner_out_at_another(api_client, user, password):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(api_client, user.email, "wrong password entirely")

    attacker = login(api_client, user.email, password)
    owner = api_client.post(LOGIN, {"email": user.email, "password": password}, format="json", REMOTE_ADDR="10.1.2.3")

    assert attacker.status_code == 429
    assert owner.status_code == 200


def test_refresh_rotates_and_the_old_refresh_token_is_refused(api_client, user, password):
    first = login(api_client, user.email, password).json()

    rotated = api_client.post(REFRESH, {"refresh": first["refresh"]}, format="json")
    reused = api_client.post(REFRESH, {"refresh": first["refresh"]}, format="json")

    assert rotated.status_code == 200
    assert rotated.json()["refresh"] != first["refresh"]
    assert AccessToken(rotated.json()["access"])["user_id"] == str(user.pk)
    assert reused.status_code == 401
    assert reused.json()["error"]["code"] == "token_invalid"


def test_a_rotated_token_presented_again_revokes_its_whole_family(api_client, user, password):
    first = login(api_client, user.email, password).json()
    other_login = login(api_client, user.email, password).json()
    rotated = api_client.post(REFRESH, {"refresh": first["refresh"]}, format="json").json()

    reused = api_client.post(REFRESH, {"refresh": first["refresh"]}, format="json")

    assert reused.status_code == 401
    # The thief or the owner holds the newer token: neither may use it any more.
    assert api_client.post(REFRESH, {"refresh": rotated["refresh"]}, format="json").status_code == 401
    # Another login (another family) is untouched.
    assert api_client.post(REFRESH, {"refresh": other_login["refresh"]}, format="json").status_code == 200


def test_the_database_keeps_no_usable_refresh_token(api_client, user, password):
    tokens = login(api_client, user.email, password).json()

    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM users_refreshtokenrecord")
        rows = [" ".join(str(value) for value in row) for row in cursor.fetchall()]

    assert len(rows) == 1
    assert tokens["refresh"] not in rows[0]
    assert tokens["refresh"].split(".")[2] not in rows[0]  # not even the signature


def test_refresh_refuses_an_access_token_and_garbage(api_client, user, password):
    tokens = login(api_client, user.email, password).json()

    assert api_client.post(REFRESH, {"refresh": tokens["access"]}, format="json").status_code == 401
    assert api_client.post(REFRESH, {"refresh": "not.a.token"}, format="json").status_code == 401
    assert api_client.post(REFRESH, {}, format="json").status_code == 400


def test_refresh_refuses_a_deactivated_user(api_client, user, password):
    tokens = login(api_client, user.email, password).json()
    User.objects.filter(pk=user.pk).update(is_active=False)

    assert api_client.post(REFRESH, {"refresh": tokens["refresh"]}, format="json").status_code == 401


def test_logout_revokes_the_refresh_token(api_client, user, password):
    tokens = login(api_client, user.email, password).json()

    logout = api_client.post(LOGOUT, {"refresh": tokens["refresh"]}, format="json")
    refresh = api_client.post(REFRESH, {"refresh": tokens["refresh"]}, format="json")
    again = api_client.post(LOGOUT, {"refresh": tokens["refresh"]}, format="json")

    assert logout.status_code == 204
    assert refresh.status_code == 401
    assert again.status_code == 401


def test_me_needs_a_token(api_client):
    response = api_client.get(ME)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_me_shows_only_the_token_owner(api_client, user, password):
    other = User.objects.create_user(email="other@example.com", password=password)
    mine = login(api_client, user.email, password).json()["access"]
    theirs = login(api_client, other.email, password).json()["access"]

    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {mine}")
    me = api_client.get(ME).json()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {theirs}")
    them = api_client.get(ME).json()

    assert me == {"id": user.pk, "email": user.email, "date_joined": me["date_joined"]}
    assert them["id"] == other.pk
    assert them["email"] == "other@example.com"


def test_me_refuses_a_tampered_or_refresh_token(api_client, user, password):
    tokens = login(api_client, user.email, password).json()
    header, payload, signature = tokens["access"].split(".")

    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {header}.{payload}.{signature[::-1]}")
    assert api_client.get(ME).status_code == 401
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['refresh']}")
    assert api_client.get(ME).status_code == 401
