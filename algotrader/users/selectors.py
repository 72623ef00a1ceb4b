"""Account reads: the user's live sessions. A session is one login's refresh-token family,
shown by its newest token (the one still usable): where it was last used from, and when."""

from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from algotrader.users.models import RefreshTokenRecord, User


def session_list(*, user: User) -> QuerySet[RefreshTokenRecord]:
    """The newest token of each live login, most recently used first, with ``started_at``
    (the login's first token). Rotation leaves one usable token per family, so one row each."""
    started = RefreshTokenRecord.objects.filter(family=OuterRef("family")).order_by("created_at").values("created_at")
    return (
        RefreshTokenRecord.objects.filter(
            user=user, used_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now()
        )
        .annotate(started_at=Subquery(started[:1]))
        .order_by("-created_at", "-id")
    )
