"""One order's life at the broker: the write-ahead intent (its tag derived from its own
id), placement with its tag (B3/B4, L2), an unanswered placement settled by looking the
tag up (adopted, or FAILED and replaced by a new tag after a grace period: E4), transient
errors retried with jittered backoff within a deadline (E4), permanent ones failed fast
(a BUY's with an alert here; an exit's failure is the position's, alerted once and placed
again until flat: see ``positions``), and the fill followed until final (E5), partial
fills recorded as such.

A lost order (given up as not found by its tag, and replaced or failed) is watched until
the end of the trading day: the broker may still put it in its book later. If it surfaces
it is cancelled when still open, and what it filled is recorded on it, so that the
position can be squared back to what the strategy should hold (``positions``).

Every status move is a compare-and-set on the order's current status. Broker calls are
made outside any database transaction: no row lock is held across the network.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from brokers.adapters.base import BrokerAdapter, BrokerOrder, BrokerOrderStatus, OrderRequest
from brokers.adapters.base import Side as BrokerSide
from brokers.exceptions import AmbiguousOutcome, BrokerAuthError, BrokerError, OrderRejected
from brokers.services import broker_account_mark_token_expired
from execution.exceptions import OrderConflict
from execution.models import Order
from execution.services import locks, safety
from monitoring.events import Event
from monitoring.metrics import ORDERS
from monitoring.services import Emission, alert_raise, alert_resolve, emit, emit_many, error_log
from strategies.models import Strategy

logger = logging.getLogger(__name__)

Status = Order.Status
_BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_FOLLOW_FIRST_POLL = 0.05
_FOLLOW_MAX_POLL = 0.5
_RECONCILE_POLL = 0.25
# Kite's order book is the exchange day's, in India: a lost tag can surface until its end.
_BOOK_TIME_ZONE = ZoneInfo("Asia/Kolkata")


def order_tag(order_id: int) -> str:
    """ "AT" + the id in base 36: unique because the id is, alphanumeric, and 20 characters
    hold ids up to 36**18."""
    digits = ""
    while True:
        order_id, remainder = divmod(order_id, 36)
        digits = _BASE36[remainder] + digits
        if order_id == 0:
            return f"AT{digits}"


def retry_seconds(reason: str) -> float:
    """How long transient broker errors are retried: a stop-loss hardest, a BUY least."""
    if reason == Order.Reason.STOPLOSS:
        return float(settings.ORDER_RETRY_SECONDS_STOPLOSS)
    if reason == Order.Reason.BUY:
        return float(settings.ORDER_RETRY_SECONDS_BUY)
    return float(settings.ORDER_RETRY_SECONDS_SELL)


def _backoff(reason: str, attempt: int) -> float:
    """Full jitter over an exponential ceiling; a stop-loss starts its retries sooner."""
    base = 0.05 if reason == Order.Reason.STOPLOSS else 0.2
    ceiling = min(float(settings.ORDER_RETRY_BACKOFF_MAX_SECONDS), base * 2 ** max(attempt - 1, 0))
    return random.uniform(ceiling / 2, ceiling)


def about(order: Order, strategy: Strategy) -> dict[str, Any]:
    # What events may say about an order: never a credential.
    return {
        "strategy_id": strategy.pk,
        "order_id": order.pk,
        "tag": order.tag,
        "side": order.side,
        "reason": order.reason,
        "quantity": order.quantity,
        "symbol": f"{strategy.exchange}:{strategy.symbol}",
    }


def watch_end(now: datetime | None = None) -> datetime:
    """The end of the broker's trading day (midnight in India): until then a lost order may
    still surface in its book."""
    local = (now or timezone.now()).astimezone(_BOOK_TIME_ZONE)
    return datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tzinfo=_BOOK_TIME_ZONE)


def order_create(
    *,
    strategy: Strategy,
    reason: Order.Reason,
    retry_of: Order | None = None,
    valid_until: Any = None,
    quantity: int | None = None,
    side: Order.Side | None = None,
    order_id: int | None = None,
    savepoint: bool = True,
) -> Order:
    """Insert the PENDING intent with its tag. Call inside the transaction that claimed the
    position, so the claim and the intent commit together or not at all. ``savepoint``:
    False when a conflict (``OrderConflict``) ends the caller's transaction anyway (a
    round trip less each side of the INSERT). ``order_id``: an id reserved for it, so the
    tag goes in with the INSERT; without one, an UPDATE sets it once the id is known.
    ``quantity`` defaults to the strategy's; ``side`` is implied by the reason except for
    EXCESS, which squares off either way."""
    if side is None:
        side = Order.Side.BUY if reason == Order.Reason.BUY else Order.Side.SELL
    try:
        with transaction.atomic(savepoint=savepoint):
            order = Order.objects.create(
                id=order_id,
                tag=None if order_id is None else order_tag(order_id),
                strategy=strategy,
                account_id=strategy.broker_account_id,
                side=side,
                reason=reason,
                quantity=strategy.quantity if quantity is None else quantity,
                retry_of=retry_of,
                valid_until=valid_until,
            )
            if order_id is None:
                order.tag = order_tag(order.pk)
                Order.objects.filter(pk=order.pk).update(tag=order.tag)
    except IntegrityError as error:
        # A live order of this side (or a filled BUY) exists: another worker got there first.
        raise OrderConflict(extra={"strategy_id": strategy.pk, "reason": str(reason)}) from error
    return order


# (order, broker order id, request logged) -> True if the taker records the acceptance.
AcceptedHandOff = Callable[[Order, str, dict[str, Any]], bool]


def _move(order: Order, expected: tuple[str, ...], **changes: Any) -> bool:
    """Compare-and-set on the order's status; on success ``order`` reflects the changes."""
    moved = Order.objects.filter(pk=order.pk, status__in=expected).update(**changes, updated_at=timezone.now())
    if moved:
        for name, value in changes.items():
            if not hasattr(value, "resolve_expression"):  # an expression (F(...) + 1) is the database's to compute
                setattr(order, name, value)
    return moved == 1


def _count_attempt(order: Order, error: str) -> None:
    # updated_at too: settlement takes an order untouched for a while as abandoned.
    Order.objects.filter(pk=order.pk).update(
        attempts=F("attempts") + 1, last_error=error[:500], updated_at=timezone.now()
    )
    order.attempts += 1
    order.last_error = error[:500]


def _request(order: Order, strategy: Strategy) -> OrderRequest:
    assert order.tag
    return OrderRequest(
        exchange=strategy.exchange,
        symbol=strategy.symbol,
        side=BrokerSide(order.side),
        quantity=order.quantity,
        tag=order.tag,
    )


def _log_exchange(order: Order, strategy: Strategy, request: dict[str, Any], response: dict[str, Any]) -> None:
    emit(
        Event.L2_ORDER_EVENT_LOGGED,
        strategy=strategy,
        order=order,
        payload={**about(order, strategy), "request": request, "response": response},
    )


def _error_text(error: BrokerError) -> str:
    return f"{type(error).__name__}: {error.message}"


def _finalize(order: Order, strategy: Strategy, status: Status, **changes: Any) -> bool:
    """Move a live order to a final status and record E5 with the outcome, once."""
    if not _move(order, Order.LIVE, status=status, **changes):
        order.refresh_from_db()
        return False
    ORDERS.labels(str(status), order.reason).inc()
    emit(
        Event.E5_ORDER_FINALIZED,
        strategy=strategy,
        order=order,
        payload={
            **about(order, strategy),
            "status": status,
            "broker_order_id": order.broker_order_id,
            "fill_price": str(order.fill_price) if order.fill_price is not None else None,
            "filled_quantity": order.filled_quantity,
            "error": order.last_error,
        },
    )
    return True


def _fail(
    order: Order, strategy: Strategy, status: Status, error: str, *, alert: str, lost: bool = False, **changes: Any
) -> None:
    """Final without a fill (B4). A BUY's failure alerts here; an exit's alerts once for the
    position (``positions``), however many times it is placed again. ``lost``: the broker
    never said no, so the tag is watched for the rest of the day."""
    order.last_error = error[:500]
    if lost:
        changes["watch_until"] = watch_end()
    if _finalize(order, strategy, status, last_error=order.last_error, **changes):
        emit(
            Event.B4_ORDER_REJECTED, strategy=strategy, order=order, message=error[:500], payload=about(order, strategy)
        )
        if order.side == Order.Side.SELL or order.reason == Order.Reason.EXCESS:
            return
        order_alert(order=order, strategy=strategy, message=alert, payload={"error": error[:500]})


def order_alert(*, order: Order, strategy: Strategy, message: str, payload: dict[str, Any] | None = None) -> None:
    """L4 for an order that ended without a fill: one incident per order, whichever of the
    pipeline and the position raises it first. A failed exit leaves a position open at the
    broker: critical; a failed entry only ends the strategy."""
    alert_raise(
        kind="order_failed",
        key=f"order:{order.pk}",
        severity="critical" if order.side == Order.Side.SELL else "warning",
        strategy=strategy,
        order=order,
        message=message,
        payload={**about(order, strategy), **(payload or {})},
    )


def _broker_down(order: Order, strategy: Strategy, error: str) -> None:
    """Broker API downtime: transient errors outlasted an order's whole retry window."""
    alert_raise(
        kind="broker_unreachable",
        key=f"account:{strategy.broker_account_id}",
        user=strategy.owner,
        message=f"The broker kept failing for '{strategy.broker_account.label}': {error}"[:500],
        payload={"broker_account_id": strategy.broker_account_id, "order_id": order.pk, "error": error[:300]},
    )


def order_fail(*, order: Order, strategy: Strategy, why: str) -> None:
    """A live order the broker did not have when looked up: FAILED, B4 and an alert; its
    tag is watched in case the request was still on its way."""
    _fail(order, strategy, Status.FAILED, why, alert=f"{order.reason} not placed: {why}", lost=True)


def order_adopt(order: Order, strategy: Strategy, broker_order_id: str) -> bool:
    if not _move(order, (Status.PENDING, Status.UNKNOWN), status=Status.PLACED, broker_order_id=broker_order_id):
        order.refresh_from_db()
        return False
    emit(
        Event.B3_ORDER_ACCEPTED,
        strategy=strategy,
        order=order,
        payload={**about(order, strategy), "broker_order_id": order.broker_order_id},
    )
    return True


def order_lookup(*, order: Order, adapter: BrokerAdapter) -> list[BrokerOrder] | None:
    """The broker's orders carrying this order's tag; None if the broker could not say."""
    assert order.tag
    try:
        return adapter.orders_by_tag(order.tag)
    except BrokerError as error:
        logger.warning("order lookup by tag failed", extra={"order_id": order.pk, "error": _error_text(error)})
        error_log(source="broker", error=error, order=order, message="Order lookup by tag failed")
        return None


def order_reconcile(*, order: Order, strategy: Strategy, adapter: BrokerAdapter, grace: float) -> bool:
    """Look an UNKNOWN (or interrupted PENDING) order up by its tag at once and again until
    ``grace`` has passed: True once found and adopted (PLACED with the broker's id)."""
    deadline = time.monotonic() + grace
    while True:
        locks.lock_keepalive()
        found = order_lookup(order=order, adapter=adapter)
        if found:
            if len(found) > 1:  # a broker-side duplicate: adopt one, an operator must see the other
                alert_raise(
                    kind="duplicate_tag",
                    key=f"order:{order.pk}",
                    strategy=strategy,
                    order=order,
                    message=f"{len(found)} orders at the broker carry tag {order.tag}",
                    payload=about(order, strategy),
                )
            order_adopt(order, strategy, found[0].broker_order_id)
            return order.status == Status.PLACED or order.status in Order.FINAL
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(_RECONCILE_POLL, remaining))


def order_place(
    *,
    order: Order,
    strategy: Strategy,
    adapter: BrokerAdapter,
    rate_taken: bool = False,
    hand_off: AcceptedHandOff | None = None,
) -> Order:
    """Place ``order`` (PENDING) and return the order that stands for it at the end: PLACED,
    or final (REJECTED/FAILED), possibly a replacement with a new tag after a lost one.
    ``rate_taken``: the first attempt's slot in the account's order rate is already taken
    (with the strategy's lock, in the same Redis round trip). ``hand_off``: called with the
    accepted order, its broker id and the request logged; if it returns True, recording
    the acceptance (``order_accepted``) is the taker's, and the order is returned still
    PENDING: the only way this returns a PENDING order."""
    deadline = time.monotonic() + retry_seconds(order.reason)
    attempt = 0
    while True:
        locks.lock_keepalive()
        if order.side == Order.Side.BUY and order.valid_until is not None and timezone.now() > order.valid_until:
            _fail(order, strategy, Status.FAILED, "The BUY is past its valid time.", alert="BUY not placed: too late")
            return order
        request = _request(order, strategy)
        logged_request = {
            "exchange": request.exchange,
            "symbol": request.symbol,
            "side": str(request.side),
            "quantity": request.quantity,
            "tag": request.tag,
            "order_type": str(request.order_type),
            "product": str(request.product),
        }
        attempt += 1
        if not (attempt == 1 and rate_taken) and not safety.order_rate_take(
            account=strategy.broker_account, reason=order.reason, deadline=deadline
        ):
            _fail(order, strategy, Status.FAILED, "No room in the account's order rate", alert="Order not placed: rate")
            return order
        try:
            broker_order_id = adapter.place_order(request)
        except AmbiguousOutcome as error:
            _log_exchange(order, strategy, logged_request, {"error": _error_text(error)})
            error_log(source="broker", error=error, strategy=strategy, order=order, message="No answer to an order")
            safety.broker_error_record(account=strategy.broker_account)
            _count_attempt(order, _error_text(error))
            _move(order, (Status.PENDING,), status=Status.UNKNOWN)
            grace = float(settings.ORDER_UNKNOWN_GRACE_SECONDS)
            if order_reconcile(order=order, strategy=strategy, adapter=adapter, grace=grace):
                return order
            if time.monotonic() >= deadline:
                _fail(
                    order,
                    strategy,
                    Status.FAILED,
                    _error_text(error),
                    alert="Order lost at the broker, retries exhausted",
                    lost=True,
                )
                _broker_down(order, strategy, _error_text(error))
                return order
            order = order_replace(order, strategy, why=_error_text(error))
            if order.status in Order.FINAL:
                return order
            continue
        except BrokerError as error:
            _log_exchange(order, strategy, logged_request, {"error": _error_text(error)})
            if not isinstance(error, OrderRejected):  # a refused order says nothing about the broker's health
                error_log(
                    source="broker", error=error, strategy=strategy, order=order, message="Order placement failed"
                )
                safety.broker_error_record(account=strategy.broker_account)
            _count_attempt(order, _error_text(error))
            if error.permanent:
                status = Status.FAILED if isinstance(error, BrokerAuthError) else Status.REJECTED
                _fail(
                    order,
                    strategy,
                    status,
                    _error_text(error),
                    alert=f"{order.reason} refused by the broker: {error.message}",
                )
                if isinstance(error, BrokerAuthError):
                    broker_account_mark_token_expired(account=strategy.broker_account, reason=error.message)
                return order
            delay = _backoff(order.reason, attempt)
            if time.monotonic() + delay >= deadline:
                _fail(
                    order,
                    strategy,
                    Status.FAILED,
                    _error_text(error),
                    alert=f"{order.reason} not placed: the broker kept failing",
                )
                _broker_down(order, strategy, _error_text(error))
                return order
            emit(
                Event.E4_ORDER_RETRY_REQUIRED,
                strategy=strategy,
                order=order,
                payload={
                    **about(order, strategy),
                    "error": _error_text(error),
                    "attempt": attempt,
                    "delay": round(delay, 3),
                },
            )
            time.sleep(delay)
            continue
        if hand_off is None or not hand_off(order, broker_order_id, logged_request):
            order_accepted(order=order, strategy=strategy, broker_order_id=broker_order_id, request=logged_request)
        return order


def order_accepted(*, order: Order, strategy: Strategy, broker_order_id: str, request: dict[str, Any]) -> None:
    """The broker took the order: the attempt, PLACED with its id, L2 and B3, in one
    transaction (two round trips less than one statement each). A no-op on the order
    once it moved on (adopted by its tag meanwhile, or settled): the exchange is still
    logged and counted."""
    response = {"broker_order_id": broker_order_id}
    with transaction.atomic():
        adopted = _move(
            order,
            (Status.PENDING, Status.UNKNOWN),
            status=Status.PLACED,
            broker_order_id=broker_order_id,
            attempts=F("attempts") + 1,
            last_error="",
        )
        if adopted:
            order.attempts += 1
            emit_many(
                [
                    _emission(Event.L2_ORDER_EVENT_LOGGED, order, strategy, request=request, response=response),
                    _emission(Event.B3_ORDER_ACCEPTED, order, strategy, broker_order_id=broker_order_id),
                ]
            )
    if not adopted:  # settled meanwhile by another reader: the exchange and the attempt still count
        _log_exchange(order, strategy, request, response)
        _count_attempt(order, "")
        order.refresh_from_db()


def _emission(event: Event, order: Order, strategy: Strategy, **payload: Any) -> Emission:
    return Emission(
        event,
        user_id=strategy.owner_id,
        strategy_id=strategy.pk,
        order_id=order.pk,
        payload={**about(order, strategy), **payload},
    )


def broker_outage_resolve(*, strategy: Strategy) -> None:
    """An accepted order ends the account's broker outage, if one is open. Called by what
    follows the order, after the placement: it costs the stop-loss's slot nothing."""
    alert_resolve(
        kind="broker_unreachable",
        key=f"account:{strategy.broker_account_id}",
        resolution="the broker accepted an order again",
    )


def order_replace(lost: Order, strategy: Strategy, *, why: str) -> Order:
    """The lost order is FAILED and a new intent with a new tag takes its place, in one
    transaction (the live-order constraints hold throughout)."""
    with transaction.atomic():
        changes = {"last_error": f"not found by tag: {why}"[:500], "watch_until": watch_end()}
        if not _finalize(lost, strategy, Status.FAILED, **changes):
            return lost  # settled meanwhile (adopted by another reader)
        replacement = order_create(
            strategy=strategy,
            reason=Order.Reason(lost.reason),
            retry_of=lost,
            valid_until=lost.valid_until,
            quantity=lost.quantity,
            side=Order.Side(lost.side),
        )
        emit(
            Event.E4_ORDER_RETRY_REQUIRED,
            strategy=strategy,
            order=replacement,
            payload={**about(replacement, strategy), "replaces": lost.tag, "error": why[:500]},
        )
    return replacement


def order_follow(
    *, order: Order, strategy: Strategy, adapter: BrokerAdapter, accepted_at: float | None = None
) -> Order:
    """Poll a PLACED order with a short backoff until the broker says it is final (then
    COMPLETE, REJECTED or CANCELLED here, E5) or ORDER_FOLLOW_SECONDS pass (it stays
    PLACED, for recovery to settle). A BUY still open then (unfilled, or partly filled)
    has its rest cancelled: its moment has passed, and what filled becomes the position
    with its stop, instead of a half-open BUY with no stop armed. An exit is never
    cancelled. ``accepted_at`` (wall clock): when the broker took the order, if that was
    a while before this call (a handed-off exit); the first poll waits until the order is
    the first poll's interval old, as a poll sooner finds no exchange's answer yet and
    spends a request of the account's rate on it."""
    deadline = time.monotonic() + float(settings.ORDER_FOLLOW_SECONDS)
    poll = _FOLLOW_FIRST_POLL
    if accepted_at is not None:
        # Bounded: a clock that jumped must not hold the follow.
        time.sleep(min(max(0.0, accepted_at + _FOLLOW_FIRST_POLL - time.time()), _FOLLOW_FIRST_POLL))
    cancelled = False
    while order.status == Status.PLACED:
        locks.lock_keepalive()
        try:
            seen = adapter.get_order(order.broker_order_id)
        except BrokerError as error:
            logger.warning("order poll failed", extra={"order_id": order.pk, "error": _error_text(error)})
            error_log(source="broker", error=error, strategy=strategy, order=order, message="Order status poll failed")
            if error.permanent:
                if isinstance(error, BrokerAuthError):
                    broker_account_mark_token_expired(account=strategy.broker_account, reason=error.message)
                return order
            seen = None
        if seen is not None and seen.status.is_final:
            order_settle(order=order, strategy=strategy, seen=seen)
            return order
        if time.monotonic() + poll > deadline and order.reason == Order.Reason.BUY and not cancelled:
            cancelled = True
            deadline = time.monotonic() + float(settings.ORDER_UNKNOWN_GRACE_SECONDS)
            _cancel_rest(order, strategy, adapter)
            continue
        if time.monotonic() + poll > deadline:
            logger.error("order not final within the follow deadline", extra={"order_id": order.pk})
            emit(
                Event.L3_ERROR_LOGGED,
                strategy=strategy,
                order=order,
                message="Order not final in time: recovery will settle it",
                payload=about(order, strategy),
            )
            return order
        time.sleep(poll)
        poll = min(poll * 2, _FOLLOW_MAX_POLL)
    return order


def _cancel_rest(order: Order, strategy: Strategy, adapter: BrokerAdapter) -> None:
    try:
        adapter.cancel_order(order.broker_order_id)
        response: dict[str, Any] = {"cancelled": True}
    except BrokerError as error:  # filled (or cancelled) meanwhile: the next poll says which
        response = {"error": _error_text(error)}
    _log_exchange(order, strategy, {"cancel_order": order.broker_order_id}, response)


def _filled(order: Order, seen: BrokerOrder) -> dict[str, Any]:
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


def order_settle(*, order: Order, strategy: Strategy, seen: BrokerOrder) -> None:
    """Record the broker's final word on a live order, with what it filled."""
    response = {
        "broker_order_id": seen.broker_order_id,
        "status": seen.raw_status or str(seen.status),
        "filled_quantity": seen.filled_quantity,
    }
    _log_exchange(order, strategy, {"get_order": order.broker_order_id}, response)
    filled = _filled(order, seen)
    if seen.status is BrokerOrderStatus.COMPLETE:
        _finalize(order, strategy, Status.COMPLETE, **filled)
    elif seen.status is BrokerOrderStatus.REJECTED:
        _fail(
            order,
            strategy,
            Status.REJECTED,
            seen.status_message or "Rejected by the broker",
            alert=f"{order.reason} rejected by the broker: {seen.status_message}",
            **filled,
        )
    else:
        _finalize(order, strategy, Status.CANCELLED, last_error=(seen.status_message or "Cancelled")[:500], **filled)


def order_surfaced_check(*, order: Order, strategy: Strategy, adapter: BrokerAdapter) -> bool:
    """Look a watched lost order up again; True once it is resolved. Found at last, it is
    recorded (surfaced, L4 once), cancelled while still open, and once final at the broker
    what it filled is recorded and the watch ends. The caller holds the strategy's lock."""
    seen: BrokerOrder | None
    if not order.broker_order_id:
        found = order_lookup(order=order, adapter=adapter)
        if not found:
            return False  # not there (yet), or the broker could not say: next round
        seen = found[0]
        if not _set(order, broker_order_id=seen.broker_order_id, surfaced_at=timezone.now()):
            return False
        _log_exchange(order, strategy, {"orders_by_tag": order.tag}, {"broker_order_id": seen.broker_order_id})
        alert_raise(
            kind="order_surfaced",
            key=f"order:{order.pk}",
            strategy=strategy,
            order=order,
            message=(
                f"{order.reason} order {order.tag}, given up as lost, reached the broker after all: "
                "it is cancelled if still open, and anything it filled is squared off"
            ),
            payload={**about(order, strategy), "broker_order_id": seen.broker_order_id},
        )
    else:
        seen = _poll(order, strategy, adapter)
    if seen is not None and not seen.status.is_final:
        _cancel_rest(order, strategy, adapter)
        seen = _poll(order, strategy, adapter)
    if seen is None or not seen.status.is_final:
        return False
    _log_exchange(
        order,
        strategy,
        {"get_order": order.broker_order_id},
        {"status": seen.raw_status or str(seen.status), "filled_quantity": seen.filled_quantity},
    )
    return _set(order, watch_until=None, **_filled(order, seen))


def _poll(order: Order, strategy: Strategy, adapter: BrokerAdapter) -> BrokerOrder | None:
    try:
        return adapter.get_order(order.broker_order_id)
    except BrokerError as error:
        logger.warning("order poll failed", extra={"order_id": order.pk, "error": _error_text(error)})
        return None


def _set(order: Order, **changes: Any) -> bool:
    """Record broker facts on a FAILED (lost) order; its status, what we did with it, stays."""
    return _move(order, (Status.FAILED,), **changes)
