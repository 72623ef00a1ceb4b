"""Following a placed order at the broker until it is final (E5): polled with a short
backoff, its fill recorded (partial fills as such), and a BUY still open when its moment
has passed cancelled for the rest. Broker calls are made outside any database transaction."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.utils import timezone

from brokers.adapters.base import BrokerAdapter, BrokerOrder, BrokerOrderStatus
from brokers.exceptions import BrokerAuthError, BrokerError
from brokers.services import broker_account_mark_token_expired
from execution.models import Order
from execution.services.inbox import order_update_take, order_updates_live
from execution.services.locks import ExecutionLock
from execution.services.orders import (
    about,
    error_text,
    order_end_unfilled,
    order_exchange_log,
    order_finalize,
)
from monitoring.events import Event
from monitoring.services import emit, error_log
from strategies.models import Strategy

logger = logging.getLogger(__name__)

Status = Order.Status

FOLLOW_FIRST_POLL = 0.05


_FOLLOW_MAX_POLL = 0.5


def order_follow(
    *,
    order: Order,
    strategy: Strategy,
    adapter: BrokerAdapter,
    lock: ExecutionLock | None,
    accepted_at: float | None = None,
) -> Order:
    """Follow a PLACED order until it is final (E5) or ORDER_FOLLOW_SECONDS pass (left PLACED for
    recovery). A BUY still open then has its rest cancelled, so what filled becomes a position
    with its stop armed; an exit is never cancelled. ``accepted_at`` (wall clock, a handed-off
    exit): no poll before the order can have an answer, as a sooner one only spends rate.
    The broker's pushed updates (``updates``) are waited for between polls; while the account's
    stream is up, the broker is asked only when none came for ORDER_UPDATE_WAIT_SECONDS."""
    deadline = time.monotonic() + float(settings.ORDER_FOLLOW_SECONDS)
    poll = FOLLOW_FIRST_POLL
    account_id = order.account_id
    # Without the stream (paper, Kite with the orderupdates process down) polling is as it was.
    wait = float(settings.ORDER_UPDATE_WAIT_SECONDS) if order_updates_live(account_id=account_id) else 0.0
    heard_at = time.monotonic()  # when an update last came (the follow's start counts as one)
    pushed = None
    if accepted_at is not None and not wait:
        # Bounded: a clock that jumped must not hold the follow.
        time.sleep(min(max(0.0, accepted_at + FOLLOW_FIRST_POLL - time.time()), FOLLOW_FIRST_POLL))
    cancelled = False
    while order.status == Status.PLACED:
        if lock is not None:
            lock.keepalive()
        seen: BrokerOrder | None = pushed
        via, pushed = "order_update", None
        if seen is None and time.monotonic() - heard_at >= wait:
            seen, give_up = order_poll(order=order, strategy=strategy, adapter=adapter)
            via = "get_order"
            if give_up:
                return order  # a permanent error: recovery settles the order
        if seen is not None and seen.status.is_final:
            order_settle(order=order, strategy=strategy, seen=seen, via=via)
            return order
        if time.monotonic() + poll > deadline and order.reason == Order.Reason.BUY and not cancelled:
            cancelled = True
            deadline = time.monotonic() + float(settings.ORDER_UNKNOWN_GRACE_SECONDS)
            order_cancel_rest(order, strategy, adapter)
            continue
        if time.monotonic() + poll > deadline:
            order_follow_expired(order, strategy)
            return order
        # Instead of sleeping: an update pushed meanwhile ends the pause at once.
        pushed = order_update_take(account_id=account_id, broker_order_id=order.broker_order_id, timeout=poll)
        if pushed is not None:
            heard_at = time.monotonic()
        else:
            poll = follow_backoff(poll)
    return order


def follow_backoff(poll: float) -> float:
    """The wait before the next look at an order not final yet, after waiting ``poll``."""
    return min(poll * 2, _FOLLOW_MAX_POLL)


def order_poll(*, order: Order, strategy: Strategy, adapter: BrokerAdapter) -> tuple[BrokerOrder | None, bool]:
    """One look at a PLACED order: what the broker says (None: a transient failure, look
    again) and whether to stop following (a permanent failure: recovery settles it)."""
    try:
        return adapter.get_order(order.broker_order_id), False
    except BrokerError as error:
        logger.warning("order poll failed", extra={"order_id": order.pk, "error": error_text(error)})
        error_log(source="broker", error=error, strategy=strategy, order=order, message="Order status poll failed")
        if error.permanent:
            if isinstance(error, BrokerAuthError):
                broker_account_mark_token_expired(account=strategy.broker_account, reason=error.message)
            return None, True
        return None, False


def order_follow_expired(order: Order, strategy: Strategy) -> None:
    """The follow gives up on an order still not final: left PLACED for recovery (L3)."""
    logger.error("order not final within the follow deadline", extra={"order_id": order.pk})
    emit(
        Event.L3_ERROR_LOGGED,
        strategy=strategy,
        order=order,
        message="Order not final in time: recovery will settle it",
        payload=about(order, strategy),
    )


def order_cancel_rest(order: Order, strategy: Strategy, adapter: BrokerAdapter) -> None:
    try:
        adapter.cancel_order(order.broker_order_id)
        response: dict[str, Any] = {"cancelled": True}
    except BrokerError as error:  # filled (or cancelled) meanwhile: the next poll says which
        response = {"error": error_text(error)}
    order_exchange_log(order, strategy, {"cancel_order": order.broker_order_id}, response)


def order_fill_changes(order: Order, seen: BrokerOrder) -> dict[str, Any]:
    """What the broker filled of ``order``: all of it when COMPLETE (a broker that reports no
    filled quantity then means the whole order), else what it says (a partial fill)."""
    if seen.status is BrokerOrderStatus.COMPLETE:
        quantity = seen.filled_quantity or order.quantity
    else:
        quantity = min(seen.filled_quantity, order.quantity)
    if quantity <= 0:
        return {"filled_quantity": 0}
    return {
        "filled_quantity": quantity,
        "fill_price": seen.average_price,
        "filled_at": seen.updated_at or timezone.now(),
    }


def order_settle(*, order: Order, strategy: Strategy, seen: BrokerOrder, via: str = "get_order") -> None:
    """Record the broker's final word on a live order, with what it filled. ``via``: how it was
    learnt (L2's request): a poll (``get_order``) or the broker's pushed ``order_update``."""
    response = {
        "broker_order_id": seen.broker_order_id,
        "status": seen.raw_status or str(seen.status),
        "filled_quantity": seen.filled_quantity,
    }
    order_exchange_log(order, strategy, {via: order.broker_order_id}, response)
    filled = order_fill_changes(order, seen)
    if seen.status is BrokerOrderStatus.COMPLETE:
        order_finalize(order, strategy, Status.COMPLETE, **filled)
    elif seen.status is BrokerOrderStatus.REJECTED:
        order_end_unfilled(
            order,
            strategy,
            Status.REJECTED,
            seen.status_message or "Rejected by the broker",
            alert=f"{order.reason} rejected by the broker: {seen.status_message}",
            **filled,
        )
    else:
        order_finalize(
            order, strategy, Status.CANCELLED, last_error=(seen.status_message or "Cancelled")[:500], **filled
        )
