"""FCM's access token from the token endpoint through google-auth, against the loopback
receiver: a busy or unreachable endpoint is a failure the push task retries (one request per
try, within FCM_TIMEOUT_SECONDS), and the key's project and token_uri may be overridden."""

import json
import socket
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from notifications.checks import fcm_service_account_loads
from notifications.fcm import FcmError, access_token, service_account
from notifications.models import Notification
from notifications.push import notification_push
from notifications.tasks import notification_push_task
from tests.factories import DeviceFactory, NotificationFactory
from tests.notifications.conftest import service_account_json
from tests.notifications.fcm_server import PROJECT

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_a_busy_token_endpoint_is_asked_once_and_the_push_left_to_retry(fcm, status):
    phone = DeviceFactory.create()
    notification = NotificationFactory.create(user=phone.user)
    fcm.token_answers = [status]

    started = time.monotonic()
    [failure] = notification_push(notification_id=notification.pk)

    assert time.monotonic() - started < 1  # google-auth's own retries, which sleep, never ran
    assert fcm.token_requests == 1
    assert not failure.permanent and str(failure) == f"token endpoint: HTTP {status}"
    assert failure.retry_after == (1.0 if status == 429 else None)
    assert fcm.attempts == []
    assert Notification.objects.get(pk=notification.pk).pushed_at is None

    assert notification_push(notification_id=notification.pk) == []  # the task's retry
    assert fcm.token_grants == 1 and len(fcm.delivered) == 1


def test_the_push_task_retries_past_a_token_endpoint_outage(fcm):
    phone = DeviceFactory.create()
    notification = NotificationFactory.create(user=phone.user)
    fcm.token_answers = [503, 503]

    result = notification_push_task.apply(args=(notification.pk,))  # eager: the retries run at once

    assert result.state == "SUCCESS"
    assert fcm.token_requests == 3 and fcm.token_grants == 1
    assert [message["token"] for message in fcm.delivered] == [phone.token]


def test_an_unreachable_token_endpoint_is_a_failure_to_retry(fcm, settings):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings.FCM_TOKEN_URI = f"http://127.0.0.1:{port}/token"

    with pytest.raises(FcmError) as raised:
        access_token(service_account())

    assert fcm.token_requests == 0
    assert not raised.value.permanent
    assert str(raised.value) == "token endpoint: ConnectionError"


def test_a_token_endpoint_slower_than_the_timeout_is_a_failure_to_retry(fcm, settings):
    fcm.token_delay = 1.0
    settings.FCM_TIMEOUT_SECONDS = 0.2

    started = time.monotonic()
    with pytest.raises(FcmError) as raised:
        access_token(service_account())

    assert time.monotonic() - started < 0.9
    assert not raised.value.permanent
    assert str(raised.value) == "token endpoint: ReadTimeout"


def test_the_project_and_token_uri_settings_override_the_keys(fcm, settings, service_account_key):
    settings.FCM_SERVICE_ACCOUNT_KEY = service_account_json(
        service_account_key, "https://oauth2.invalid/token", project_id="another-project"
    )
    settings.FCM_PROJECT_ID = PROJECT
    settings.FCM_TOKEN_URI = fcm.token_uri
    phone = DeviceFactory.create()

    assert notification_push(notification_id=NotificationFactory.create(user=phone.user).pk) == []

    assert fcm.token_grants == 1 and len(fcm.delivered) == 1


def test_a_key_without_a_project_fails_the_system_check_unless_one_is_set(fcm, settings, service_account_key):
    settings.FCM_SERVICE_ACCOUNT_KEY = service_account_json(service_account_key, fcm.token_uri, project_id="")

    [error] = fcm_service_account_loads()
    assert error.id == "notifications.E001"
    assert "project_id" in error.msg

    settings.FCM_PROJECT_ID = PROJECT
    assert fcm_service_account_loads() == []


def test_a_key_that_is_not_rsa_fails_the_system_check(fcm, settings):
    key = json.loads(settings.FCM_SERVICE_ACCOUNT_KEY)
    key["private_key"] = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    settings.FCM_SERVICE_ACCOUNT_KEY = json.dumps(key)

    [error] = fcm_service_account_loads()

    assert error.id == "notifications.E001"
    assert "BEGIN" not in error.msg
