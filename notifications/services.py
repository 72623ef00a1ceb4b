"""Writes of notifications and devices: a notification recorded beside the event it tells of
(an exit, a user's L4 alert), marked read by its user; a phone registered, moved or removed."""

from collections.abc import Sequence
from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from algotrader.celery import task_send
from algotrader.queues import TaskName
from algotrader.users.models import User
from monitoring.events import Event
from monitoring.logging import redact_text
from monitoring.models import EventLog
from monitoring.services import Emission
from notifications import fcm
from notifications.exceptions import DeviceNotFound, NotificationNotFound
from notifications.models import Device, Notification

Kind = Notification.Kind

# The events a notification follows (registered in NotificationsConfig.ready).
FOLLOWED_EVENTS = (Event.S5_STRATEGY_EXITED, Event.L4_ALERT_TRIGGERED)
# Alerts that say the user's strategy could not trade as planned: its entry was skipped or
# refused because something it needed (the schedule, the workers, the account) was not ready.
# The morning readiness check's alert (strategies.readiness.ALERT_KIND) is one of them.
READINESS_ALERTS = frozenset({"buy_late", "entries_halted", "order_task_expired", "run_not_ready"})
TOKEN_EXPIRY_ALERT = "broker_token_expired"  # noqa: S105 - an alert kind, not a secret
TITLES = {
    Kind.ALERT: "Alert",
    Kind.READINESS: "Strategy could not trade",
    Kind.TOKEN_EXPIRY: "Broker login needed",
}
EXIT_TITLES = {
    "SELL": "sold at its sell time",
    "STOPLOSS": "stop-loss exit",
    "STOP": "exited on your stop",
    "REJECTED": "ended: its BUY did not go through",
    "ABORT": "exited by the safety abort",
    "TARGET": "target reached",
    "TRAIL": "trailing stop exit",
}


def notifications_from_events(followed: Sequence[tuple[Emission, EventLog]]) -> None:
    """The event follower: one notification for each exit and each user's alert opened, in
    one INSERT in the events' own transaction (an exit records no more work than that; the
    push leaves after commit, on a queue of its own)."""
    rows = [row for row in (_notification_of(emission) for emission, _ in followed) if row is not None]
    if not rows:
        return
    created = Notification.objects.bulk_create(rows)
    if fcm.push_enabled():
        # robust: a Celery broker that is down must not fail the committed exit; the minutely
        # sweep (notifications_push_pending_task) pushes what could not be enqueued.
        transaction.on_commit(partial(_push_send, [notification.pk for notification in created]), robust=True)


def _push_send(notification_ids: list[int]) -> None:
    for notification_id in notification_ids:
        task_send(TaskName.NOTIFICATION_PUSH, args=(notification_id,))


def _notification_of(emission: Emission) -> Notification | None:
    if emission.user_id is None:
        return None  # an operators' alert
    payload: dict[str, Any] = emission.payload
    symbol = str(payload.get("symbol", ""))
    if emission.event is Event.S5_STRATEGY_EXITED:
        reason = str(payload.get("reason", ""))
        title = f"{symbol or 'Strategy'}: {EXIT_TITLES.get(reason, 'exited')}"
        body = f"Strategy #{emission.strategy_id} ended ({reason or 'exit'})."
        kind = Kind.EXIT
    else:
        if payload.get("state") == "resolved":
            return None
        alert = str(payload.get("alert", ""))
        kind = Kind.TOKEN_EXPIRY if alert == TOKEN_EXPIRY_ALERT else Kind.ALERT
        if alert in READINESS_ALERTS:
            kind = Kind.READINESS
        title = f"{TITLES[kind]}: {symbol}" if symbol else TITLES[kind]
        body = emission.message
    return Notification(
        user_id=emission.user_id,
        kind=kind,
        title=title[:120],
        body=redact_text(body)[:500],
        strategy_id=emission.strategy_id,
        order_id=emission.order_id,
    )


def notification_mark_read(*, user: User, notification_id: int) -> Notification:
    """Mark one of the user's notifications read; one already read keeps its first read time."""
    Notification.objects.filter(pk=notification_id, user=user, read_at__isnull=True).update(read_at=timezone.now())
    notification = Notification.objects.filter(pk=notification_id, user=user).first()
    if notification is None:
        raise NotificationNotFound()
    return notification


def notifications_mark_all_read(*, user: User, up_to_id: int | None = None) -> int:
    """Mark the user's unread notifications read (only those up to ``up_to_id``, the newest
    the app has shown, so one that arrived meanwhile stays unread); returns how many."""
    unread = Notification.objects.filter(user=user, read_at__isnull=True)
    if up_to_id is not None:
        unread = unread.filter(pk__lte=up_to_id)
    return unread.update(read_at=timezone.now())


def device_register(*, user: User, token: str) -> tuple[Device, bool]:
    """Register the phone's FCM token for ``user``: idempotent, and a token another user
    registered moves to this one (the phone signed in as someone else). Returns (device,
    created)."""
    with transaction.atomic():
        device, created = Device.objects.select_for_update().get_or_create(token=token, defaults={"user": user})
        if not created:
            # The row lock orders two racing registrations of one token: the last one wins.
            device.user = user
            device.save(update_fields=["user", "updated_at"])
    return device, created


def device_remove(*, user: User, device_id: int) -> None:
    deleted, _ = Device.objects.filter(pk=device_id, user=user).delete()
    if not deleted:
        raise DeviceNotFound()
