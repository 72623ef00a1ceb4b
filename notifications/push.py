"""A notification pushed to its user's phones through FCM, once per phone: two deliveries of
the push task never both send (an advisory lock), a phone that had it is not sent it again,
and a phone FCM reports dead is removed."""

import logging
import random
from datetime import timedelta
from typing import Any

from django.utils import timezone

from algotrader.advisory_locks import session_lock
from notifications import fcm
from notifications.fcm import FcmError
from notifications.models import Device, Notification

logger = logging.getLogger("algotrader.notifications")

_PUSH_LOCK_SPACE = 0x9054  # the PostgreSQL advisory lock held while a notification is pushed
# Pushes that never went out (the task was lost, or out of retries) are sent again by the
# sweep from this long after the notification, and no later than that: an alert hours old
# is noise on a lock screen; the feed still has it.
PENDING_AFTER = timedelta(seconds=60)
PENDING_WITHIN = timedelta(hours=1)
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 120.0


def notification_push(*, notification_id: int) -> list[FcmError]:
    """Push the notification to every phone of its user that has not had it; returns the
    failures a retry can cure (429, 5xx, no answer), for the task to retry. Once none is
    left it is marked pushed, and nothing more is sent for it."""
    if not fcm.push_enabled():
        return []
    with session_lock(_PUSH_LOCK_SPACE, notification_id % 2**31) as held:
        if not held:
            return []  # another worker is pushing it right now
        notification = Notification.objects.filter(pk=notification_id, pushed_at__isnull=True).first()
        if notification is None:
            return []
        return _push(notification)


def _push(notification: Notification) -> list[FcmError]:
    deliveries: dict[str, str] = dict(notification.deliveries)
    failures: list[FcmError] = []
    message = push_message(notification)
    for device in Device.objects.filter(user_id=notification.user_id).order_by("pk"):
        mark = str(device.pk)
        if mark in deliveries:
            continue
        try:
            fcm.send(token=device.token, message=message)
        except FcmError as error:
            about = {"notification_id": notification.pk, "device_id": device.pk, "error": str(error)}
            if not error.permanent:
                logger.warning("push failed, to retry", extra=about)
                failures.append(error)
                continue
            if error.dead_token:
                # The same token only: one registered again meanwhile is a new registration.
                Device.objects.filter(pk=device.pk, token=device.token).delete()
                logger.info("push token dead: device removed", extra=about)
                deliveries[mark] = "dead"
            else:
                logger.warning("push failed for good", extra=about)
                deliveries[mark] = f"failed: {error}"[:200]
        else:
            deliveries[mark] = "sent"
        # Recorded at once, so a worker killed after this send never sends it again.
        Notification.objects.filter(pk=notification.pk).update(deliveries=deliveries)
    if not failures:
        Notification.objects.filter(pk=notification.pk).update(pushed_at=timezone.now())
    return failures


def push_message(notification: Notification) -> dict[str, Any]:
    """FCM's Message (without its token): what the lock screen shows, and the ids the app
    opens it by (FCM's data values are strings)."""
    data = {"notification_id": str(notification.pk), "kind": notification.kind}
    if notification.strategy_id is not None:
        data["strategy_id"] = str(notification.strategy_id)
    if notification.order_id is not None:
        data["order_id"] = str(notification.order_id)
    return {
        "notification": {"title": notification.title, "body": notification.body},
        "data": data,
        # Exits and alerts are time-critical: delivered at once, not batched by the phone's doze.
        "android": {"priority": "high"},
        "apns": {"headers": {"apns-priority": "10"}},
    }


def retry_countdown(*, retries: int, failures: list[FcmError]) -> float:
    """Seconds before the next try: exponential with jitter, and never before FCM's Retry-After."""
    ceiling = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2**retries)
    asked = max((failure.retry_after or 0.0 for failure in failures), default=0.0)
    return max(asked, random.uniform(ceiling / 2, ceiling))


def notifications_push_pending() -> list[int]:
    """The ids of fresh notifications whose push never finished (their task lost, or out of
    retries), at most a batch: the sweep sends their tasks again."""
    if not fcm.push_enabled():
        return []
    now = timezone.now()
    pending = Notification.objects.filter(
        pushed_at__isnull=True, created_at__gte=now - PENDING_WITHIN, created_at__lte=now - PENDING_AFTER
    ).order_by("created_at")
    return list(pending.values_list("pk", flat=True)[:500])
