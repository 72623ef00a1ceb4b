"""The BUY's validity window (the late-BUY rule): a BUY may start until BUY_GRACE_SECONDS
after it was due, and not after. Scheduling (fan-out, task expiry), execution (the order
and its placement) and settlement (the rescue of a lost BUY) all ask here."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone


def buy_window_seconds() -> int:
    """How long after it was due a BUY may still start (a task's relative expiry)."""
    return int(settings.BUY_GRACE_SECONDS)


def buy_valid_until(fire_at: datetime) -> datetime:
    """The last instant a BUY due at ``fire_at`` may start: what its order records."""
    return fire_at + timedelta(seconds=buy_window_seconds())


def buy_window_open(
    *, fire_at: datetime | None = None, valid_until: datetime | None = None, now: datetime | None = None
) -> bool:
    """Whether a BUY due at ``fire_at``, or whose window ends at ``valid_until`` (as its
    order records it), may still start at ``now``."""
    if valid_until is None:
        assert fire_at is not None, "a BUY's window needs its due time or its end"
        valid_until = buy_valid_until(fire_at)
    return (now or timezone.now()) <= valid_until


def buy_window_earliest_fire_at(now: datetime | None = None) -> datetime:
    """The earliest due time whose BUY may still start at ``now``: a query's bound
    (``buy_fire_at__gte``) for BUYs still within their window."""
    return (now or timezone.now()) - timedelta(seconds=buy_window_seconds())
