"""Pushes through FCM HTTP v1, against the loopback receiver that answers as FCM does: a push
delivered with an access token got by the service account's signed JWT, a token FCM reports
dead removed, a retry after 429, and no push twice."""

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.utils import timezone

from algotrader.redis_client import get_redis
from monitoring.models import Alert
from notifications.checks import fcm_service_account_loads
from notifications.models import Device, Notification
from notifications.push import notification_push, notifications_push_pending
from notifications.tasks import notification_push_task, notifications_push_pending_task
from tests.factories import DeviceFactory, NotificationFactory, UserFactory
from tests.notifications.conftest import service_account_json
from tests.notifications.fcm_server import (
    INVALID_MESSAGE,
    INVALID_TOKEN,
    QUOTA_EXCEEDED,
    UNAVAILABLE,
    UNREGISTERED,
)

pytestmark = pytest.mark.django_db


def test_a_notification_is_pushed_to_every_phone_of_its_user(fcm):
    user = UserFactory.create()
    phones = DeviceFactory.create_batch(2, user=user)
    DeviceFactory.create()  # someone else's phone
    notification = NotificationFactory.create(user=user, kind="exit", title="NSE:INFY: stop-loss exit")

    result = notification_push_task.apply(args=(notification.pk,))

    assert result.state == "SUCCESS"
    assert sorted(fcm.attempts) == sorted(phone.token for phone in phones)
    message = fcm.delivered[0]
    assert message["notification"]["title"] == "NSE:INFY: stop-loss exit"
    assert message["data"] == {"notification_id": str(notification.pk), "kind": "exit"}
    assert message["android"] == {"priority": "high"}
    notification.refresh_from_db()
    assert notification.pushed_at is not None
    assert notification.deliveries == {str(phone.pk): "sent" for phone in phones}
    assert fcm.token_grants == 1  # one access token, signed for and cached, served both sends


def test_a_push_task_run_twice_sends_once(fcm):
    phone = DeviceFactory.create()
    notification = NotificationFactory.create(user=phone.user)

    notification_push_task.apply(args=(notification.pk,))
    notification_push_task.apply(args=(notification.pk,))

    assert fcm.attempts == [phone.token]


def test_the_access_token_is_kept_in_redis_for_the_next_push(fcm):
    phone = DeviceFactory.create()
    first, second = NotificationFactory.create_batch(2, user=phone.user)

    notification_push(notification_id=first.pk)
    notification_push(notification_id=second.pk)

    assert fcm.token_grants == 1
    [key] = get_redis().keys("fcm:access_token:*")
    assert 0 < get_redis().ttl(key) <= 3599 - 300


def test_a_revoked_access_token_is_replaced_and_the_push_goes_through(fcm):
    phone = DeviceFactory.create()
    first, second = NotificationFactory.create_batch(2, user=phone.user)
    notification_push(notification_id=first.pk)

    fcm.revoke_access_tokens()
    notification_push(notification_id=second.pk)

    assert fcm.token_grants == 2
    assert len(fcm.delivered) == 2


def test_a_token_fcm_reports_unregistered_is_removed(fcm):
    user = UserFactory.create()
    dead, alive = DeviceFactory.create_batch(2, user=user)
    fcm.answers[dead.token] = [UNREGISTERED]
    notification = NotificationFactory.create(user=user)

    result = notification_push_task.apply(args=(notification.pk,))

    assert result.state == "SUCCESS"
    assert list(Device.objects.filter(user=user)) == [alive]
    notification.refresh_from_db()
    assert notification.deliveries == {str(dead.pk): "dead", str(alive.pk): "sent"}
    assert notification.pushed_at is not None


def test_a_token_fcm_calls_an_invalid_argument_is_removed(fcm):
    phone = DeviceFactory.create()
    fcm.answers[phone.token] = [INVALID_TOKEN]

    notification_push(notification_id=NotificationFactory.create(user=phone.user).pk)

    assert not Device.objects.filter(pk=phone.pk).exists()


def test_a_message_fcm_refuses_keeps_the_phone_and_is_not_retried(fcm):
    phone = DeviceFactory.create()
    fcm.answers[phone.token] = [INVALID_MESSAGE]
    notification = NotificationFactory.create(user=phone.user)

    failures = notification_push(notification_id=notification.pk)

    assert failures == []
    assert Device.objects.filter(pk=phone.pk).exists()
    notification.refresh_from_db()
    assert notification.deliveries[str(phone.pk)].startswith("failed: FCM: HTTP 400")
    assert notification.pushed_at is not None


def test_a_push_fcm_answers_429_is_retried_and_delivered(fcm):
    user = UserFactory.create()
    throttled, delivered = DeviceFactory.create_batch(2, user=user)
    fcm.answers[throttled.token] = [QUOTA_EXCEEDED]
    notification = NotificationFactory.create(user=user)

    result = notification_push_task.apply(args=(notification.pk,))  # eager: the retry runs at once

    assert result.state == "SUCCESS"
    # The retry sent only to the phone that had not had it.
    assert fcm.attempts == [throttled.token, delivered.token, throttled.token]
    assert sorted(m["token"] for m in fcm.delivered) == sorted([throttled.token, delivered.token])
    notification.refresh_from_db()
    assert notification.pushed_at is not None


def test_a_push_still_failing_after_its_retries_is_left_to_the_sweep(fcm):
    phone = DeviceFactory.create()
    fcm.answers[phone.token] = [UNAVAILABLE] * 10
    notification = NotificationFactory.create(user=phone.user)
    retries = notification_push_task.max_retries or 0

    result = notification_push_task.apply(args=(notification.pk,))

    assert result.state == "FAILURE"
    assert len(fcm.attempts) == retries + 1
    notification.refresh_from_db()
    assert notification.pushed_at is None and notification.deliveries == {}


def test_the_sweep_sends_again_only_fresh_pushes_never_finished(fcm):
    now = timezone.now()
    user = UserFactory.create()
    lost, pushed, stale, _just_made = NotificationFactory.create_batch(4, user=user)
    Notification.objects.filter(pk=lost.pk).update(created_at=now - timedelta(minutes=5))
    Notification.objects.filter(pk=pushed.pk).update(created_at=now - timedelta(minutes=5), pushed_at=now)
    Notification.objects.filter(pk=stale.pk).update(created_at=now - timedelta(hours=2))

    assert notifications_push_pending() == [lost.pk]
    assert notifications_push_pending_task.apply().get() == 1
    assert get_redis().llen("notifications") == 1  # the push task, on its own queue


def test_nothing_is_pushed_or_swept_when_fcm_is_not_configured(settings):
    settings.FCM_SERVICE_ACCOUNT_KEY = ""
    phone = DeviceFactory.create()
    notification = NotificationFactory.create(user=phone.user)

    assert notification_push(notification_id=notification.pk) == []
    assert notifications_push_pending() == []
    notification.refresh_from_db()
    assert notification.pushed_at is None


def test_a_refused_service_account_fails_the_task_and_alerts_operators(fcm, settings):
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # not the one Google knows
    settings.FCM_SERVICE_ACCOUNT_KEY = service_account_json(other_key, fcm.token_uri)
    phone = DeviceFactory.create()
    notification = NotificationFactory.create(user=phone.user)

    result = notification_push_task.apply(args=(notification.pk,))

    assert result.state == "FAILURE"
    assert fcm.refused_assertions == 1 and fcm.attempts == []
    [alert] = Alert.objects.filter(kind="task_failed")
    assert "FcmAuthError" in alert.message
    notification.refresh_from_db()
    assert notification.pushed_at is None  # the sweep pushes it once the key is fixed
    assert Device.objects.filter(pk=phone.pk).exists()


def test_the_key_may_be_a_file_and_one_that_does_not_load_fails_the_system_check(fcm, settings, tmp_path):
    key_file = tmp_path / "service-account.json"
    key_file.write_text(settings.FCM_SERVICE_ACCOUNT_KEY)
    settings.FCM_SERVICE_ACCOUNT_KEY = str(key_file)
    phone = DeviceFactory.create()

    notification_push(notification_id=NotificationFactory.create(user=phone.user).pk)
    assert len(fcm.delivered) == 1
    assert fcm_service_account_loads() == []

    settings.FCM_SERVICE_ACCOUNT_KEY = '{"private_key": "-----BEGIN PRIVATE KEY-----\\nnot a key"}'
    [error] = fcm_service_account_loads()
    assert error.id == "notifications.E001"
    assert "BEGIN" not in error.msg  # the key's text is never quoted
