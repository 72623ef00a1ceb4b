"""The password's change (ends every other login) and its reset by email (the link works once,
and no answer tells whether an email has an account)."""

from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.core.mail import send_mail

from algotrader.queues import TaskName
from algotrader.users import services
from algotrader.users.models import RefreshTokenRecord, User
from algotrader.users.tasks import reset_link_send_task

pytestmark = pytest.mark.django_db

LOGIN = "/api/v1/auth/login/"
REFRESH = "/api/v1/auth/refresh/"
CHANGE = "/api/v1/auth/password/change/"
RESET = "/api/v1/auth/password/reset/"
CONFIRM = "/api/v1/auth/password/reset/confirm/"
NEW_PASSWORD = "a brand new passphrase"


def login(client, email: str, password: str):
    response = client.post(LOGIN, {"email": email, "password": password}, format="json")
    assert response.status_code == 200
    return response.json()


def refreshes(client, refresh: str) -> bool:
    return bool(client.post(REFRESH, {"refresh": refresh}, format="json").status_code == 200)


@pytest.fixture
def reset_mail(monkeypatch, django_capture_on_commit_callbacks):
    """Ask for a reset of ``email`` and run the task it enqueues, as a worker would."""
    sent: list[tuple[str, tuple[str, ...]]] = []
    monkeypatch.setattr(services, "task_send", lambda name, args: sent.append((name, args)))

    def request(client, email: str):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(RESET, {"email": email}, format="json")
        for name, args in sent:
            assert name == TaskName.RESET_LINK_SEND
            reset_link_send_task(*args)
        sent.clear()
        return response

    return request


def link_of(message) -> dict[str, str]:
    [line] = [line for line in message.body.splitlines() if line.startswith(settings.PASSWORD_RESET_URL)]
    return {name: values[0] for name, values in parse_qs(urlsplit(line).query).items()}


def test_change_ends_every_other_login_and_keeps_the_callers(api_client, user, password):
    mine, other, third = (login(api_client, user.email, password) for _ in range(3))
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {mine['access']}")

    response = api_client.post(CHANGE, {"current_password": password, "new_password": NEW_PASSWORD}, format="json")

    assert response.status_code == 204
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert not refreshes(api_client, other["refresh"])
    assert not refreshes(api_client, third["refresh"])
    assert refreshes(api_client, mine["refresh"])


def test_change_with_a_token_of_no_login_ends_every_login(auth_client, api_client, user, password):
    tokens = login(api_client, user.email, password)

    response = auth_client.post(CHANGE, {"current_password": password, "new_password": NEW_PASSWORD}, format="json")

    assert response.status_code == 204
    assert not refreshes(api_client, tokens["refresh"])


def test_change_refuses_a_wrong_current_password_and_changes_nothing(api_client, user, password):
    tokens = login(api_client, user.email, password)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")

    response = api_client.post(
        CHANGE, {"current_password": "not my password", "new_password": NEW_PASSWORD}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"current_password": ["The current password is wrong."]}
    user.refresh_from_db()
    assert user.check_password(password)


@pytest.mark.parametrize("weak", ["short1", "password123", "z" * 24])
def test_change_refuses_a_weak_new_password_through_the_validators(auth_client, user, password, weak):
    response = auth_client.post(CHANGE, {"current_password": password, "new_password": weak}, format="json")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["new_password"]
    user.refresh_from_db()
    assert user.check_password(password)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"new_password": NEW_PASSWORD}, "current_password"),
        ({"current_password": "x"}, "new_password"),
        ({"current_password": ["x"], "new_password": NEW_PASSWORD}, "current_password"),
        ({"current_password": "x", "new_password": "y" * 129}, "new_password"),
    ],
)
def test_change_bad_bodies_are_400_per_field(auth_client, body, field):
    response = auth_client.post(CHANGE, body, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_change_needs_a_login(api_client, password):
    response = api_client.post(CHANGE, {"current_password": password, "new_password": NEW_PASSWORD}, format="json")

    assert response.status_code == 401


def test_reset_link_works_once_and_ends_every_login(api_client, user, password, mailoutbox, reset_mail):
    tokens = login(api_client, user.email, password)

    requested = reset_mail(api_client, user.email.upper())
    [message] = mailoutbox
    link = link_of(message)
    first = api_client.post(CONFIRM, {**link, "new_password": NEW_PASSWORD}, format="json")
    second = api_client.post(CONFIRM, {**link, "new_password": "yet another passphrase"}, format="json")

    assert requested.status_code == 202
    assert message.to == [user.email]
    assert first.status_code == 204
    assert second.status_code == 400
    assert list(second.json()["error"]["fields"]) == ["token"]
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert not refreshes(api_client, tokens["refresh"])
    assert not RefreshTokenRecord.objects.filter(user=user, revoked_at__isnull=True).exists()
    assert login(api_client, user.email, NEW_PASSWORD)["access"]


def test_reset_answers_an_unknown_email_as_a_known_one_and_mails_nobody(api_client, user, mailoutbox, reset_mail):
    known = reset_mail(api_client, user.email)
    unknown = reset_mail(api_client, "nobody@example.com")

    assert (known.status_code, unknown.status_code) == (202, 202)
    assert known.json().keys() == unknown.json().keys() == {"email"}
    assert [message.to for message in mailoutbox] == [[user.email]]


def test_reset_mails_nobody_for_a_deactivated_account(api_client, user, mailoutbox, reset_mail):
    User.objects.filter(pk=user.pk).update(is_active=False)

    assert reset_mail(api_client, user.email).status_code == 202
    assert mailoutbox == []


def test_a_weak_password_leaves_the_link_usable(api_client, user, mailoutbox, reset_mail):
    reset_mail(api_client, user.email)
    link = link_of(mailoutbox[0])

    weak = api_client.post(CONFIRM, {**link, "new_password": "short1"}, format="json")
    good = api_client.post(CONFIRM, {**link, "new_password": NEW_PASSWORD}, format="json")

    assert weak.status_code == 400
    assert list(weak.json()["error"]["fields"]) == ["new_password"]
    assert good.status_code == 204


def test_a_link_dies_when_the_password_changes_otherwise(api_client, user, password, mailoutbox, reset_mail):
    reset_mail(api_client, user.email)
    link = link_of(mailoutbox[0])
    tokens = login(api_client, user.email, password)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    api_client.post(CHANGE, {"current_password": password, "new_password": NEW_PASSWORD}, format="json")
    api_client.credentials()

    response = api_client.post(CONFIRM, {**link, "new_password": "yet another passphrase"}, format="json")

    assert response.status_code == 400


@pytest.mark.parametrize(
    "link",
    [
        {"uid": "MQ", "token": "made-up"},
        {"uid": "not base64!", "token": "abc-def"},
        {"uid": "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk", "token": "abc-def"},  # an id past bigint
        {"uid": "", "token": ""},
    ],
)
def test_confirm_refuses_a_made_up_link_with_400(api_client, user, link):
    response = api_client.post(CONFIRM, {**link, "new_password": NEW_PASSWORD}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_reset_request_is_throttled_per_account(api_client, user, monkeypatch):
    from rest_framework.settings import api_settings
    from rest_framework.throttling import SimpleRateThrottle

    rates = {**api_settings.DEFAULT_THROTTLE_RATES, "auth_account": "2/min", "auth_ip": "100/min"}
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", rates)
    monkeypatch.setattr(services, "task_send", lambda name, args: None)

    statuses = [
        api_client.post(RESET, {"email": user.email}, format="json", REMOTE_ADDR=f"10.0.0.{i}").status_code
        for i in range(3)
    ]

    assert statuses == [202, 202, 429]


def test_the_reset_task_delivered_twice_sends_one_email(
    api_client, user, mailoutbox, monkeypatch, django_capture_on_commit_callbacks
):
    sent: list[tuple[str, ...]] = []
    monkeypatch.setattr(services, "task_send", lambda name, args: sent.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        api_client.post(RESET, {"email": user.email}, format="json")
        api_client.post(RESET, {"email": user.email}, format="json")
    first, second = sent

    for args in (first, first, second):
        reset_link_send_task(*args)

    assert len(mailoutbox) == 2  # one for each request, none for the redelivery


def test_a_reset_email_that_failed_to_send_is_sent_on_redelivery(
    api_client, user, mailoutbox, monkeypatch, django_capture_on_commit_callbacks
):
    sent: list[tuple[str, ...]] = []
    monkeypatch.setattr(services, "task_send", lambda name, args: sent.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        api_client.post(RESET, {"email": user.email}, format="json")
    outcomes = iter([ConnectionRefusedError("smtp down"), None])

    def smtp_down_once(*args, **kwargs):
        error = next(outcomes)
        if error is not None:
            raise error
        return send_mail(*args, **kwargs)

    monkeypatch.setattr(services, "send_mail", smtp_down_once)
    with pytest.raises(ConnectionRefusedError):
        reset_link_send_task(*sent[0])
    reset_link_send_task(*sent[0])

    assert len(mailoutbox) == 1
