"""The resting protective stop: once a BUY fills, an SL-M SELL (an SL with a limit buffer where the
broker refuses SL-M) rests at the broker for what is held, so the position is protected while our
processes are down. It is the position's one exit order: every exit converts it to MARKET
(``protective_execute``); a refused conversion ends it (filled by its trigger, or cancelled and
the cancel confirmed) before any other SELL. Moves (P2) and partial fills modify it in place."""

from __future__ import annotations

import logging
import re
import time
from decimal import ROUND_DOWN, Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from brokers.adapters.base import BrokerAdapter, BrokerOrder, BrokerOrderStatus, OrderType
from brokers.exceptions import BrokerError
from brokers.instruments import find_instrument
from execution.models import Order
from execution.services import locks
from execution.services.claims import Position, Status, position_held_quantity
from execution.services.fills import order_follow, order_settle
from execution.services.locks import ExecutionLock
from execution.services.orders import about, error_text, order_adopt, order_create, order_exchange_log, order_fail
from execution.services.placement import broker_adapter, order_place
from execution.services.reconcile import order_lookup
from monitoring.events import Event
from monitoring.services import alert_raise, emit
from strategies.models import Strategy

logger = logging.getLogger(__name__)

_BPS = Decimal(10_000)
# A refused conversion is tried again unless the refusal is permanent and the order rests: placed or
# modified a moment ago, the broker (Kite: "being processed") takes a modify only once it rests.
RESTING_STATUSES = frozenset({"OPEN", "TRIGGER PENDING"})
CONVERT_ATTEMPTS = 20
CONVERT_RETRY_SECONDS = 0.1
# How brokers say an instrument takes no stop-market orders (Kite blocks SL-M for some segments).
_SL_M_REFUSED = re.compile(r"SL-?M|stop[- ]?loss market|market orders? (?:is|are) (?:not allowed|blocked)", re.I)


def protective_enabled(strategy: Strategy) -> bool:
    """The setting, the account's switch and the strategy's: any off, exits are new MARKET SELLs."""
    return bool(settings.PROTECTIVE_STOPS and strategy.protective_stop and strategy.broker_account.protective_stops)


def protective_live(strategy: Strategy) -> Order | None:
    return Order.objects.filter(strategy=strategy, protective=True, status__in=Order.LIVE).order_by("-id").first()


def _tick(strategy: Strategy) -> Decimal:
    instrument = find_instrument(strategy.exchange, strategy.symbol)
    return instrument.tick_size if instrument is not None and instrument.tick_size else Decimal("0.05")


def _down_to_tick(price: Decimal, tick: Decimal) -> Decimal:
    return (price / tick).to_integral_value(rounding=ROUND_DOWN) * tick


def protective_trigger(strategy: Strategy, stop_trigger_price: Decimal) -> Decimal:
    """The strategy's stop trigger less PROTECTIVE_STOP_BUFFER_BPS, down to the instrument's tick:
    the broker's stop fires at or after ours, never before it."""
    buffered = stop_trigger_price * (1 - Decimal(settings.PROTECTIVE_STOP_BUFFER_BPS) / _BPS)
    return _down_to_tick(buffered, _tick(strategy))


def _sl_limit(strategy: Strategy, trigger: Decimal) -> Decimal:
    return _down_to_tick(trigger * (1 - Decimal(settings.PROTECTIVE_SL_LIMIT_BUFFER_BPS) / _BPS), _tick(strategy))


def protective_place(*, strategy: Strategy, lock: ExecutionLock | None) -> Order | None:
    """After a BUY filled (the caller holds the lock, the position is BOUGHT): the protective SELL
    for what is held, written ahead with its own tag, then placed (P1). None when off, when an
    exit is live already, or when the broker refused it (alerted: the tick stop-loss still acts)."""
    if not protective_enabled(strategy):
        return None
    order = _intent(strategy, OrderType.SL_M)
    if order is None:
        return None
    order = _place_resting(strategy, order, lock)
    if order.status == Order.Status.REJECTED and _SL_M_REFUSED.search(order.last_error or ""):
        logger.info("SL-M refused for the instrument: the protective stop is an SL", extra={"order_id": order.pk})
        retry = _intent(strategy, OrderType.SL)
        if retry is not None:
            order = _place_resting(strategy, retry, lock)
    if order.status in Order.FINAL:
        protective_missing_alert(order=order, strategy=strategy, why=f"not placed ({order.last_error or order.status})")
    return order


def protective_missing_alert(*, order: Order, strategy: Strategy, why: str) -> None:
    """The user told that no protective stop rests at the broker for a held position: only the
    app's own stop-loss guards it (which fires only while the system is up)."""
    alert_raise(
        kind="protective_not_placed",
        key=f"strategy:{strategy.pk}",
        severity="warning",
        strategy=strategy,
        order=order,
        message=f"The protective stop was {why} at the broker: the stop-loss is watched by the app only",
        payload=about(order, strategy),
    )


def _intent(strategy: Strategy, order_type: OrderType) -> Order | None:
    """The PENDING protective order for what is held, committed under the strategy's row lock
    while it is still RUNNING & BOUGHT with no exit live (the live-exit constraint backs it)."""
    with transaction.atomic():
        locked = Strategy.objects.select_for_update().filter(pk=strategy.pk).first()
        if locked is None or locked.status != Status.RUNNING or locked.position != Position.BOUGHT:
            return None
        if locked.stop_trigger_price is None:
            return None
        if Order.objects.filter(strategy=locked, side=Order.Side.SELL, status__in=Order.LIVE).exists():
            return None
        held = position_held_quantity(locked, opened=True)
        if held <= 0:
            return None
        trigger = protective_trigger(locked, locked.stop_trigger_price)
        return order_create(
            strategy=locked,
            reason=Order.Reason.STOPLOSS,
            quantity=held,
            protective=True,
            order_type=str(order_type),
            trigger_price=trigger,
            limit_price=_sl_limit(locked, trigger) if order_type is OrderType.SL else None,
        )


def _place_resting(strategy: Strategy, order: Order, lock: ExecutionLock | None) -> Order:
    with broker_adapter(strategy) as adapter:
        order = order_place(order=order, strategy=strategy, adapter=adapter, lock=lock)
    if order.status == Order.Status.PLACED:
        emit(
            Event.P1_PROTECTIVE_STOP_PLACED,
            strategy=strategy,
            order=order,
            message=f"Protective stop {order.order_type} at {order.trigger_price} for {order.quantity} "
            "is resting at the broker",
            payload=_about(order, strategy),
        )
    return order


def _about(order: Order, strategy: Strategy, **extra: Any) -> dict[str, Any]:
    return {
        **about(order, strategy),
        "order_type": order.order_type,
        "trigger_price": str(order.trigger_price) if order.trigger_price is not None else None,
        "broker_order_id": order.broker_order_id,
        **extra,
    }


def _modify(order: Order, strategy: Strategy, adapter: BrokerAdapter, changes: dict[str, Any]) -> BrokerError | None:
    """One modify at the broker, logged (L2) and, accepted, recorded on the order; the error if not."""
    request = {"modify_order": order.broker_order_id, **{k: str(v) for k, v in changes.items()}}
    try:
        adapter.modify_order(order.broker_order_id, **changes)
    except BrokerError as error:
        order_exchange_log(order, strategy, request, {"error": error_text(error)})
        return error
    order_exchange_log(order, strategy, request, {"modified": True})
    recorded = {name: (str(value) if name == "order_type" else value) for name, value in changes.items()}
    Order.objects.filter(pk=order.pk).update(
        **recorded, modifications=F("modifications") + 1, updated_at=timezone.now()
    )
    order.refresh_from_db()
    return None


def protective_move(*, strategy: Strategy, trigger_price: Decimal, lock: ExecutionLock | None) -> Order | None:
    """A new stop (U5, a trailing stop): the resting protective order's trigger follows it (P2).
    Nothing without one resting, or once an exit converted it."""
    order = protective_live(strategy)
    if order is None or order.status != Order.Status.PLACED or order.order_type == OrderType.MARKET:
        return None
    trigger = protective_trigger(strategy, trigger_price)
    if trigger == order.trigger_price:
        return order
    changes: dict[str, Any] = {"trigger_price": trigger}
    if order.order_type == OrderType.SL:
        changes["price"] = _sl_limit(strategy, trigger)
    with broker_adapter(strategy) as adapter:
        error = _modify(order, strategy, adapter, changes)
    if error is not None:
        logger.warning("protective stop not moved", extra={"order_id": order.pk, "error": error_text(error)})
        return None
    if "price" in changes:
        Order.objects.filter(pk=order.pk).update(limit_price=changes["price"])
    emit(
        Event.P2_PROTECTIVE_STOP_MOVED,
        strategy=strategy,
        order=order,
        message=f"Protective stop moved to {trigger}",
        payload=_about(order, strategy),
    )
    return order


def protective_resize(*, strategy: Strategy, lock: ExecutionLock | None) -> Order | None:
    """A partial BUY's later fill: the resting protective order grows to what is held."""
    order = protective_live(strategy)
    if order is None or order.status != Order.Status.PLACED or order.order_type == OrderType.MARKET:
        return None
    held = position_held_quantity(strategy)
    if held <= 0 or held == order.quantity:
        return order
    with broker_adapter(strategy) as adapter:
        error = _modify(order, strategy, adapter, {"quantity": held})
    if error is not None:
        logger.warning("protective stop not resized", extra={"order_id": order.pk, "error": error_text(error)})
        return None
    return order


def protective_execute(
    *, order: Order, strategy: Strategy, adapter: BrokerAdapter, lock: ExecutionLock | None
) -> Order:
    """``order_execute`` for a protective order (the caller holds the lock): while the position
    is BOUGHT an unplaced one is placed to rest; once an exit claimed it (EXITING), it is
    converted to MARKET (PLACED, to be followed) or ended (final: filled by its trigger, or
    cancelled and confirmed, or lost), and a live protective order is never left beside a new SELL."""
    strategy.refresh_from_db()
    if order.status in (Order.Status.PENDING, Order.Status.UNKNOWN):
        if strategy.position == Position.BOUGHT:
            return _place_resting(strategy, order, lock)  # a replacement of one lost on its way
        found = order_lookup(order=order, adapter=adapter)
        if found is None:
            return order  # the broker could not say: settlement looks again
        if not found:
            order_fail(order=order, strategy=strategy, why="protective stop not found at the broker")
            return order
        order_adopt(order, strategy, found[0].broker_order_id)
    if order.status != Order.Status.PLACED or strategy.position != Position.EXITING:
        return order
    if order.order_type == OrderType.MARKET:
        return order  # converted already: followed as any exit
    return _convert(order, strategy, adapter, lock)


def _convert(order: Order, strategy: Strategy, adapter: BrokerAdapter, lock: ExecutionLock | None) -> Order:
    held = position_held_quantity(strategy)
    changes: dict[str, Any] = {"order_type": OrderType.MARKET}
    if 0 < held != order.quantity:
        changes["quantity"] = held
    for attempt in range(1, CONVERT_ATTEMPTS + 1):
        error = _modify(order, strategy, adapter, changes)
        if error is None:
            logger.info("protective stop converted into the exit", extra={"order_id": order.pk})
            return order
        seen = _read(order, adapter)
        if seen is None or seen.status.is_final or attempt == CONVERT_ATTEMPTS:
            break
        if error.permanent and seen.raw_status in RESTING_STATUSES:
            break  # refused while it rests: a real refusal
        # Still being processed (placed or modified a moment ago, whatever the read shows a moment
        # after the refusal), or a refusal that passes: the same modify is taken once it rests.
        time.sleep(CONVERT_RETRY_SECONDS)
    if seen is not None and seen.order_type == OrderType.MARKET and not seen.status.is_final:
        Order.objects.filter(pk=order.pk).update(order_type=str(OrderType.MARKET), updated_at=timezone.now())
        order.refresh_from_db()
        return order  # converted already (its answer, or its record, was lost): followed as the exit
    if seen is not None and not seen.status.is_final:
        # Refused on an open order: cancelled, and the cancel confirmed, before any other SELL.
        try:
            adapter.cancel_order(order.broker_order_id)
            order_exchange_log(order, strategy, {"cancel_order": order.broker_order_id}, {"cancelled": True})
        except BrokerError as cancel_error:  # filled (or cancelled) meanwhile: the read says which
            order_exchange_log(
                order, strategy, {"cancel_order": order.broker_order_id}, {"error": error_text(cancel_error)}
            )
        order = order_follow(order=order, strategy=strategy, adapter=adapter, lock=lock)
        if order.status == Order.Status.COMPLETE:
            _triggered(order, strategy)
        return order
    if seen is None:
        return order  # the broker could not say: still live; settlement converts it again
    protective_settle(order=order, strategy=strategy, seen=seen)
    return order


def _read(order: Order, adapter: BrokerAdapter) -> BrokerOrder | None:
    try:
        return adapter.get_order(order.broker_order_id)
    except BrokerError as error:
        logger.warning("protective stop read failed", extra={"order_id": order.pk, "error": error_text(error)})
        return None


def protective_settle(*, order: Order, strategy: Strategy, seen: BrokerOrder) -> bool:
    """Record the broker's final word on a protective order; filled (by its trigger, unless an
    exit converted it), the exit is the stop-loss's: the order's reason and the strategy's exit
    reason say STOPLOSS, and P3 is recorded. Idempotent: False if it was final already."""
    if not seen.status.is_final or not order.is_live:
        return False
    # Converted: on record, or at the broker (the modify went through and its record was lost).
    converted = OrderType.MARKET in (order.order_type, seen.order_type)
    if seen.status is BrokerOrderStatus.COMPLETE and not converted:
        with transaction.atomic():
            Order.objects.filter(pk=order.pk, status__in=Order.LIVE).update(reason=Order.Reason.STOPLOSS)
            Strategy.objects.filter(pk=strategy.pk, position=Position.EXITING).update(
                exit_reason=Strategy.ExitReason.STOPLOSS
            )
            order.reason = Order.Reason.STOPLOSS
            order_settle(order=order, strategy=strategy, seen=seen)
    else:
        order_settle(order=order, strategy=strategy, seen=seen)
    if order.status == Order.Status.COMPLETE and not converted:
        _triggered(order, strategy)
    return True


def _triggered(order: Order, strategy: Strategy) -> None:
    if order.reason != Order.Reason.STOPLOSS:
        Order.objects.filter(pk=order.pk).update(reason=Order.Reason.STOPLOSS)
        order.reason = Order.Reason.STOPLOSS
        Strategy.objects.filter(pk=strategy.pk, position=Position.EXITING).update(
            exit_reason=Strategy.ExitReason.STOPLOSS
        )
    emit(
        Event.P3_PROTECTIVE_STOP_FILLED,
        strategy=strategy,
        order=order,
        message=f"The broker's protective stop filled {order.filled_quantity} at {order.fill_price}",
        payload=_about(order, strategy, fill_price=str(order.fill_price), filled_quantity=order.filled_quantity),
    )


def protective_cancel_resting(*, strategy: Strategy, keep: Order | None = None) -> None:
    """A position that ended with a protective order still resting (flat by another order): it
    is cancelled, so nothing is left at the broker for a flat position. The caller holds the lock."""
    order = protective_live(strategy)
    if order is None or (keep is not None and order.pk == keep.pk) or order.status != Order.Status.PLACED:
        return
    with broker_adapter(strategy) as adapter:
        try:
            adapter.cancel_order(order.broker_order_id)
            order_exchange_log(order, strategy, {"cancel_order": order.broker_order_id}, {"cancelled": True})
        except BrokerError as error:
            order_exchange_log(order, strategy, {"cancel_order": order.broker_order_id}, {"error": error_text(error)})
        seen = _read(order, adapter)
    if seen is not None and seen.status.is_final:
        order_settle(order=order, strategy=strategy, seen=seen)
    else:
        logger.warning("resting protective stop not confirmed cancelled", extra={"order_id": order.pk})


def protective_stop_move(*, strategy_id: int, trigger_price: Decimal) -> Order | None:
    """MOVE_PROTECTIVE_STOP (a trailing stop, U5): under the strategy's lock, the resting protective
    order's trigger follows the strategy's stop as stored now. ``trigger_price`` names the move that
    asked; a stale one (a later move stored meanwhile) moves to the latest, so redeliveries and
    reordered tasks converge. Nothing once an exit claimed the position."""
    lock = locks.lock_wait(strategy_id=strategy_id, timeout=float(settings.EXECUTION_LOCK_SECONDS))
    if lock is None:
        logger.warning("protective stop not moved: the strategy stayed busy", extra={"strategy_id": strategy_id})
        return None
    with lock:
        strategy = Strategy.objects.select_related("owner", "broker_account").filter(pk=strategy_id).first()
        if strategy is None or strategy.status != Status.RUNNING or strategy.position != Position.BOUGHT:
            return None
        stored = strategy.stop_trigger_price
        if stored is not None and stored != trigger_price:
            logger.info("protective stop moves to the latest stop", extra={"strategy_id": strategy_id})
        return protective_move(strategy=strategy, trigger_price=stored or trigger_price, lock=lock)
