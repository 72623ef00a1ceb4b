"""``emit``: the one way an event of the catalogue is recorded (``emit_many`` for a
batch). It writes an EventLog row, one JSON log line with the event's ids, counts the
event in the metrics, and (after commit) pushes user-visible events to the user's
WebSocket group. ``error_log`` is L3 for a caught broker or Redis failure."""

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from algotrader.users.models import User
from monitoring.events import Event
from monitoring.logging import redact_text
from monitoring.metrics import EVENTS
from monitoring.models import EventLog

if TYPE_CHECKING:
    from execution.models import Order
    from strategies.models import Strategy

logger = logging.getLogger("algotrader.events")

PUSH_CONCURRENCY = 32


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def _push_to_users(pushes: list[tuple[int, dict[str, Any]]]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return

    async def send_all() -> None:
        # A few at a time: a fan-out of thousands must not open thousands of connections.
        for start in range(0, len(pushes), PUSH_CONCURRENCY):
            batch = pushes[start : start + PUSH_CONCURRENCY]
            results = await asyncio.gather(
                *(
                    layer.group_send(user_group(user_id), {"type": "event.message", "event": body})
                    for user_id, body in batch
                ),
                return_exceptions=True,
            )
            for (user_id, body), result in zip(batch, results, strict=True):
                if isinstance(result, Exception):  # a dropped push must never undo the event it reports
                    logger.warning(
                        "websocket push failed", extra={"user_id": user_id, "event": body["code"]}, exc_info=result
                    )

    try:
        async_to_sync(send_all)()
    except Exception:
        logger.warning("websocket push failed", extra={"events": len(pushes)}, exc_info=True)


@dataclass(frozen=True)
class Emission:
    """One event for ``emit_many``, by ids: a batch of thousands needs no model instances."""

    event: Event
    user_id: int | None = None
    strategy_id: int | None = None
    message: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    order_id: int | None = None


def emit(
    event: Event,
    *,
    user: User | None = None,
    strategy: "Strategy | None" = None,
    order: "Order | None" = None,
    message: str = "",
    payload: dict[str, Any] | None = None,
) -> EventLog:
    """Record ``event``. A strategy's events form its timeline; its owner is the user.
    ``order``: the order the event concerns (an order's history is its events)."""
    if strategy is not None and user is None:
        user = strategy.owner
    [record] = emit_many(
        [
            Emission(
                event,
                user_id=user.pk if user else None,
                strategy_id=strategy.pk if strategy else (order.strategy_id if order else None),
                message=message,
                payload=payload or {},
                order_id=order.pk if order else None,
            )
        ]
    )
    return record


def error_emission(
    *,
    source: str,
    error: BaseException | str,
    message: str = "",
    user_id: int | None = None,
    strategy_id: int | None = None,
    order_id: int | None = None,
    payload: dict[str, Any] | None = None,
) -> Emission:
    """L3 for a caught broker or Redis failure, as an Emission (for a thread that queues
    its events, like the market listener). ``source`` names what failed: "broker", "redis"."""
    kind = type(error).__name__ if isinstance(error, BaseException) else "Error"
    described = redact_text(f"{kind}: {error}")[:300]
    return Emission(
        Event.L3_ERROR_LOGGED,
        user_id=user_id,
        strategy_id=strategy_id,
        message=f"{message or source + ' failure'}: {described}"[:500],
        payload={**(payload or {}), "source": source, "error_type": kind, "error": described},
        order_id=order_id,
    )


def error_log(
    *,
    source: str,
    error: BaseException | str,
    message: str = "",
    strategy: "Strategy | None" = None,
    order: "Order | None" = None,
    payload: dict[str, Any] | None = None,
) -> EventLog:
    """L3: a broker or Redis failure that was caught and handled (retried, degraded, left
    to recovery), recorded so that operators see how often and where it happens."""
    [record] = emit_many(
        [
            error_emission(
                source=source,
                error=error,
                message=message,
                user_id=strategy.owner_id if strategy else None,
                strategy_id=strategy.pk if strategy else (order.strategy_id if order else None),
                order_id=order.pk if order else None,
                payload=payload,
            )
        ]
    )
    return record


def emit_many(emissions: Sequence[Emission]) -> list[EventLog]:
    """Record many events at once (a scheduler fan-out): one INSERT for all the rows,
    then, as ``emit`` does for one, a JSON log line each and, after commit, the pushes."""
    records = EventLog.objects.bulk_create(
        [
            EventLog(
                code=emission.event.code,
                user_id=emission.user_id,
                strategy_id=emission.strategy_id,
                order_id=emission.order_id,
                message=emission.message[:500],
                payload=emission.payload,
            )
            for emission in emissions
        ]
    )
    pushes: list[tuple[int, dict[str, Any]]] = []
    for emission, record in zip(emissions, records, strict=True):
        event = emission.event
        EVENTS.labels(event.code).inc()
        logger.info(
            emission.message or event.label,
            extra={
                "event": event.code,
                "event_name": event.label,
                "category": event.category.value,
                "event_id": record.pk,
                "user_id": emission.user_id,
                "strategy_id": emission.strategy_id,
                "order_id": emission.order_id,
                "payload": emission.payload,
            },
        )
        if emission.user_id is not None and event.user_visible:
            body = {
                "id": record.pk,
                "code": event.code,
                "name": event.label,
                "strategy_id": emission.strategy_id,
                "order_id": emission.order_id,
                "message": record.message,
                "payload": emission.payload,
                "created_at": record.created_at.isoformat(),
            }
            pushes.append((emission.user_id, body))
    if pushes:
        transaction.on_commit(lambda: _push_to_users(pushes))
    return records
