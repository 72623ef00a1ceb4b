"""Reads of a user's notifications, always through the user: another user's id finds nothing."""

from django.db.models import QuerySet

from algotrader.users.models import User
from notifications.models import Notification


def notification_list(*, user: User, unread: bool | None = None, kind: str | None = None) -> QuerySet[Notification]:
    """The user's feed, newest first; ``unread`` True only the unread, False only the read."""
    notifications = Notification.objects.filter(user=user)
    if unread is not None:
        notifications = notifications.filter(read_at__isnull=unread)
    if kind:
        notifications = notifications.filter(kind=kind)
    return notifications.order_by("-created_at", "-id")
