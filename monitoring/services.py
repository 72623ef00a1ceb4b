"""``emit``: the one way an event of the catalogue is recorded. It writes an
EventLog row, one JSON log line, and (after commit) pushes user-visible events to
the user's WebSocket group."""

import logging
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from algotrader.users.models import User
from monitoring.events import Event
from monitoring.models import EventLog

if TYPE_CHECKING:
    from strategies.models import Strategy

logger = logging.getLogger("algotrader.events")


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def _push_to_user(user_id: int, body: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(user_group(user_id), {"type": "event.message", "event": body})
    except Exception:  # a dropped push must never undo the event it reports
        logger.warning("websocket push failed", extra={"user_id": user_id, "event": body["code"]}, exc_info=True)


def emit(
    event: Event,
    *,
    user: User | None = None,
    strategy: "Strategy | None" = None,
    message: str = "",
    payload: dict[str, Any] | None = None,
) -> EventLog:
    """Record ``event``. A strategy's events form its timeline; its owner is the user."""
    payload = payload or {}
    if strategy is not None and user is None:
        user = strategy.owner
    record = EventLog.objects.create(
        code=event.code, user=user, strategy=strategy, message=message[:500], payload=payload
    )
    logger.info(
        message or event.label,
        extra={
            "event": event.code,
            "event_name": event.label,
            "category": event.category.value,
            "user_id": user.pk if user else None,
            "strategy_id": strategy.pk if strategy else None,
            "payload": payload,
        },
    )
    if user is not None and event.user_visible:
        body = {
            "id": record.pk,
            "code": event.code,
            "name": event.label,
            "strategy_id": strategy.pk if strategy else None,
            "message": record.message,
            "payload": payload,
            "created_at": record.created_at.isoformat(),
        }
        transaction.on_commit(lambda: _push_to_user(user.pk, body))
    return record
