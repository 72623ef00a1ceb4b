"""One order's record: the write-ahead intent (its tag derived from its id) and every move of its
status, a compare-and-set that records its event (B3, B4, E4, E5, L2). A lost order is watched
until the trading day ends, as the broker may still put it in its book."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from brokers.adapters.base import OrderRequest, OrderType
from brokers.adapters.base import Side as BrokerSide
from brokers.exceptions import BrokerError
from execution.exceptions import OrderConflict
from execution.models import Order
from execution.services import losses
from monitoring.events import Event
from monitoring.metrics import ORDERS
from monitoring.models import EventLog
from monitoring.services import Emission, alert_raise, alert_resolve, emit, emit_many
from strategies.models import Strategy

Status = Order.Status

_BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


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
    **stop: Any,
) -> Order:
    """Insert the PENDING intent with its tag, inside the transaction that claimed the position
        so both commit or neither does. ``savepoint``: False when an ``OrderConflict`` ends the
        caller's transaction anyway. ``order_id``: an id reserved for it, so the tag goes in with the
        INSERT. ``side`` follows the reason except for EXCESS, which squares off either way. ``stop``:
    the protective stop's fields (protective, order_type, trigger_price, limit_price)."""
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
                **stop,
            )
            if order_id is None:
                order.tag = order_tag(order.pk)
                Order.objects.filter(pk=order.pk).update(tag=order.tag)
    except IntegrityError as error:
        # A live order of this side (or a filled BUY) exists: another worker got there first.
        raise OrderConflict(extra={"strategy_id": strategy.pk, "reason": str(reason)}) from error
    return order


def _move(order: Order, expected: tuple[str, ...], **changes: Any) -> bool:
    """Compare-and-set on the order's status; on success ``order`` reflects the changes."""
    moved = Order.objects.filter(pk=order.pk, status__in=expected).update(**changes, updated_at=timezone.now())
    if moved:
        for name, value in changes.items():
            if not hasattr(value, "resolve_expression"):  # an expression (F(...) + 1) is the database's to compute
                setattr(order, name, value)
    return moved == 1


def order_attempt_count(order: Order, error: str) -> None:
    # updated_at too: settlement takes an order untouched for a while as abandoned.
    Order.objects.filter(pk=order.pk).update(
        attempts=F("attempts") + 1, last_error=error[:500], updated_at=timezone.now()
    )
    order.attempts += 1
    order.last_error = error[:500]


def order_exchange_log(order: Order, strategy: Strategy, request: dict[str, Any], response: dict[str, Any]) -> None:
    emit(
        Event.L2_ORDER_EVENT_LOGGED,
        strategy=strategy,
        order=order,
        payload={**about(order, strategy), "request": request, "response": response},
    )


def error_text(error: BrokerError) -> str:
    return f"{type(error).__name__}: {error.message}"


def order_finalize(order: Order, strategy: Strategy, status: Status, **changes: Any) -> bool:
    """Move a live order to a final status and record E5 with the outcome, once."""
    if not _move(order, Order.LIVE, status=status, **changes):
        order.refresh_from_db()
        return False
    ORDERS.labels(str(status), order.reason).inc()
    if order.side == Order.Side.SELL and order.filled_quantity:
        # An exit's fill moved realized P&L: the day's loss limit is checked once it commits.
        transaction.on_commit(partial(losses.loss_check_soon, user_id=strategy.owner_id))
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


def order_end_unfilled(
    order: Order, strategy: Strategy, status: Status, error: str, *, alert: str, lost: bool = False, **changes: Any
) -> None:
    """Final without a fill (B4). A BUY's failure alerts here; an exit's alerts once for the
    position (``outcomes``), however many times it is placed again. ``lost``: the broker
    never said no, so the tag is watched for the rest of the day."""
    order.last_error = error[:500]
    if lost:
        changes["watch_until"] = watch_end()
    if order_finalize(order, strategy, status, last_error=order.last_error, **changes):
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


def order_fail(*, order: Order, strategy: Strategy, why: str) -> None:
    """A live order the broker did not have when looked up: FAILED, B4 and an alert; its
    tag is watched in case the request was still on its way."""
    order_end_unfilled(order, strategy, Status.FAILED, why, alert=f"{order.reason} not placed: {why}", lost=True)


def order_broker_request(order: Order, strategy: Strategy) -> OrderRequest:
    assert order.tag
    return OrderRequest(
        exchange=strategy.exchange,
        symbol=strategy.symbol,
        side=BrokerSide(order.side),
        quantity=order.quantity,
        tag=order.tag,
        order_type=OrderType(order.order_type),
        trigger_price=order.trigger_price,
        price=order.limit_price,
    )


def order_request_logged(request: OrderRequest) -> dict[str, Any]:
    """An order request as L2 records it."""
    return {
        "exchange": request.exchange,
        "symbol": request.symbol,
        "side": str(request.side),
        "quantity": request.quantity,
        "tag": request.tag,
        "order_type": str(request.order_type),
        "product": str(request.product),
        **({"trigger_price": str(request.trigger_price)} if request.trigger_price is not None else {}),
        **({"price": str(request.price)} if request.price is not None else {}),
    }


def order_adopt(order: Order, strategy: Strategy, broker_order_id: str) -> bool:
    """The broker has the order, found by its tag: PLACED with its id, and B3. With no
    attempt on record (its worker died between the POST and recording it), the placement
    is recorded too, its L2 and the attempt, in the same transaction."""
    unrecorded = order.attempts == 0
    with transaction.atomic():
        if not _move(
            order,
            (Status.PENDING, Status.UNKNOWN),
            status=Status.PLACED,
            broker_order_id=broker_order_id,
            attempts=Greatest(F("attempts"), 1),
        ):
            order.refresh_from_db()
            return False
        order.attempts = max(order.attempts, 1)
        emissions: list[Emission] = []
        if unrecorded:
            request = order_request_logged(order_broker_request(order, strategy))
            response = {"broker_order_id": broker_order_id, "found_by_tag": True}
            emissions.append(
                _emission(Event.L2_ORDER_EVENT_LOGGED, order, strategy, request=request, response=response)
            )
        emissions.append(_emission(Event.B3_ORDER_ACCEPTED, order, strategy, broker_order_id=broker_order_id))
        emit_many(emissions)
    return True


def order_accepted(*, order: Order, strategy: Strategy, broker_order_id: str, request: dict[str, Any]) -> None:
    """The broker took the order: the attempt, PLACED with its id, L2 and B3, in one
    transaction. A no-op on the order once it moved on (adopted by its tag meanwhile, or
    settled): the exchange is still logged and counted."""
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
    # Adopted by its tag meanwhile: the exchange and the attempt still count, unless the
    # adoption recorded this very placement already (``order_adopt``).
    if not adopted and not _placement_adopted(order, broker_order_id):
        order_exchange_log(order, strategy, request, response)
        order_attempt_count(order, "")
    if not adopted:
        order.refresh_from_db()


def _placement_adopted(order: Order, broker_order_id: str) -> bool:
    return EventLog.objects.filter(
        order_id=order.pk,
        code=Event.L2_ORDER_EVENT_LOGGED.code,
        payload__response__broker_order_id=broker_order_id,
        payload__response__found_by_tag=True,
    ).exists()


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
        if not order_finalize(lost, strategy, Status.FAILED, **changes):
            return lost  # settled meanwhile (adopted by another reader)
        replacement = order_create(
            strategy=strategy,
            reason=Order.Reason(lost.reason),
            retry_of=lost,
            valid_until=lost.valid_until,
            quantity=lost.quantity,
            side=Order.Side(lost.side),
            # A resting protective stop is replaced as one; a converted one as the MARKET exit it became.
            protective=lost.protective and lost.order_type != OrderType.MARKET,
            order_type=lost.order_type,
            trigger_price=lost.trigger_price if lost.order_type != OrderType.MARKET else None,
            limit_price=lost.limit_price if lost.order_type != OrderType.MARKET else None,
        )
        emit(
            Event.E4_ORDER_RETRY_REQUIRED,
            strategy=strategy,
            order=replacement,
            payload={**about(replacement, strategy), "replaces": lost.tag, "error": why[:500]},
        )
    return replacement


def order_watch_record(order: Order, **changes: Any) -> bool:
    """Record broker facts on a FAILED (lost) order; its status, what we did with it, stays."""
    return _move(order, (Status.FAILED,), **changes)


def order_mark_unknown(order: Order) -> None:
    """No answer to the placement: UNKNOWN until its tag is looked up."""
    _move(order, (Status.PENDING,), status=Status.UNKNOWN)
