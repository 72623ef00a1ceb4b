"""The three executions (E1 BUY, E2 SELL or STOP, E3 stop-loss) and the position moves
they make. Each takes the strategy's lock (X2, or X3 on conflict), then claims the
position with a compare-and-set and inserts the PENDING order in the same transaction,
commits, and only then calls the broker; the position moves again only once the order
is final. Exactly one exit order exists per position: the exit claim (BOUGHT ->
EXITING) is won once, and the live-exit constraint backs it up.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from algotrader import redis_keys
from brokers.adapters.base import BrokerAdapter
from brokers.adapters.registry import adapter_for
from execution.exceptions import OrderConflict
from execution.models import Order
from execution.services import locks, safety
from execution.services.orders import (
    about,
    order_alert,
    order_create,
    order_follow,
    order_lookup,
    order_place,
    order_reconcile,
)
from market.stoploss_index import stoploss_arm, stoploss_disarm
from monitoring.events import Event
from monitoring.logging import log_context
from monitoring.metrics import TimedAdapter
from monitoring.services import alert_raise, emit
from strategies import runtime, scheduling
from strategies import services as strategy_services
from strategies.models import Strategy

logger = logging.getLogger(__name__)

Status = Strategy.Status
Position = Strategy.Position
ExitReason = Strategy.ExitReason
ACTIVE = (Status.RUNNING, Status.STOPPED)
EXIT_POSITIONS = {ExitReason.STOPLOSS: Position.EXITED_BY_SL}


def _strategy(strategy_id: int) -> Strategy | None:
    strategy = Strategy.objects.select_related("owner", "broker_account").filter(pk=strategy_id).first()
    if strategy is None:
        logger.warning("executed strategy no longer exists", extra={"strategy_id": strategy_id})
    return strategy


def _about(strategy: Strategy) -> dict[str, Any]:
    return {"strategy_id": strategy.pk, "symbol": redis_keys.instrument(strategy.exchange, strategy.symbol)}


@contextmanager
def _locked(strategy: Strategy, *, kind: str, wait: bool) -> Iterator[bool]:
    """Yield True with ``lock_state:{id}`` held. A duplicate BUY gives up on conflict; an
    exit waits for the holder (a BUY still following its fill) since it must not be lost."""
    token = locks.lock_acquire(strategy_id=strategy.pk)
    if token is None:
        emit(Event.X3_LOCK_CONFLICT, strategy=strategy, payload={**_about(strategy), "kind": kind, "waits": wait})
        if wait:
            timeout = settings.ORDER_FOLLOW_SECONDS + settings.ORDER_RETRY_SECONDS_BUY
            token = locks.lock_wait(strategy_id=strategy.pk, timeout=timeout)
            if token is None:
                # A holder this slow is most likely a dead worker whose lock has not expired:
                # an exit must not be lost to it, and the database claim still allows only one.
                logger.warning("exit proceeds without the lock", extra={"strategy_id": strategy.pk, "kind": kind})
                yield True
                return
        if token is None:
            yield False
            return
    emit(Event.X2_LOCK_ACQUIRED, strategy=strategy, payload={**_about(strategy), "kind": kind})
    with locks.lock_held(strategy_id=strategy.pk, token=token):
        yield True


def _live_order(strategy: Strategy, side: Order.Side) -> Order | None:
    return Order.objects.filter(strategy=strategy, side=side, status__in=Order.LIVE).first()


def _claim(
    strategy: Strategy, *, expected: dict[str, Any], changes: dict[str, Any], reason: Order.Reason, **order: Any
) -> Order | None:
    """The position claim and the order intent, committed together; None if lost."""
    try:
        with transaction.atomic():
            if not strategy_services.strategy_transition(strategy_id=strategy.pk, expected=expected, changes=changes):
                return None
            if (
                reason != Order.Reason.BUY
                and Order.objects.filter(
                    strategy=strategy, side=Order.Side.SELL, status__in=(*Order.LIVE, Order.Status.COMPLETE)
                ).exists()
            ):
                # The row lock the transition took serialises this check: the exit is already out.
                transaction.set_rollback(True)
                return None
            return order_create(strategy=strategy, reason=reason, **order)
    except OrderConflict:
        return None


# --- E1 --------------------------------------------------------------------------------


def strategy_buy_execute(*, strategy_id: int) -> Order | None:
    """E1: claim RUNNING & NONE -> BUYING with a PENDING BUY, place it, follow it, then
    BOUGHT (stop armed) or back to NONE and the strategy ends (rejected)."""
    strategy = _strategy(strategy_id)
    if strategy is None:
        return None
    emit(Event.E1_EXECUTE_BUY, strategy=strategy, payload=_about(strategy))
    with _locked(strategy, kind="BUY", wait=False) as held:
        if not held:
            return None
        valid_until = strategy.buy_fire_at + timedelta(seconds=settings.BUY_GRACE_SECONDS)
        if timezone.now() > valid_until:
            alert_raise(
                kind="buy_late",
                key=f"strategy:{strategy.pk}",
                severity="warning",
                strategy=strategy,
                message="BUY refused: it arrived after its grace window",
                payload={**_about(strategy), "valid_until": valid_until.isoformat()},
            )
            return None
        halt = safety.entries_halted(account=strategy.broker_account)
        if halt is not None:
            alert_raise(
                kind="entries_halted",
                key=f"strategy:{strategy.pk}",
                severity="warning",
                strategy=strategy,
                message=f"BUY refused: new entries are halted ({halt.reason})",
                payload=_about(strategy),
            )
            return None
        order = _claim(
            strategy,
            expected={"status": Status.RUNNING, "position": Position.NONE},
            changes={"position": Position.BUYING},
            reason=Order.Reason.BUY,
            valid_until=valid_until,
        )
        if order is None:
            return position_resume(strategy, Order.Side.BUY)
        return order_execute(strategy, order)


# --- E2 --------------------------------------------------------------------------------


def strategy_sell_execute(*, strategy_id: int, reason: str = ExitReason.SELL) -> Order | None:
    """E2: the SELL at sell time (claim BOUGHT -> EXITING(SELL)) or the exit a STOP asked
    for (already EXITING(STOP)). With no position (the BUY never filled) the strategy ends."""
    strategy = _strategy(strategy_id)
    if strategy is None:
        return None
    emit(Event.E2_EXECUTE_SELL, strategy=strategy, payload={**_about(strategy), "reason": reason})
    with _locked(strategy, kind=str(reason), wait=True) as held:
        if not held:
            return None
        order = _claim_exit(strategy, reason)
        if order is None:
            strategy.refresh_from_db()
            if strategy.position == Position.BUYING:
                # The BUY was interrupted: settle it first, then the exit can be claimed.
                position_resume(strategy, Order.Side.BUY)
                strategy.refresh_from_db()
                order = _claim_exit(strategy, reason)
        if order is None:
            strategy.refresh_from_db()
            if strategy.position == Position.NONE and strategy.status in ACTIVE and reason == ExitReason.SELL:
                strategy_services.strategy_exit(
                    strategy_id=strategy.pk, reason=ExitReason.SELL, position=Position.NONE, at=timezone.now()
                )
                return None
            return position_resume(strategy, Order.Side.SELL)
        stoploss_disarm(strategy_id=strategy.pk, instrument=redis_keys.instrument(strategy.exchange, strategy.symbol))
        return order_execute(strategy, order)


def _claim_exit(strategy: Strategy, reason: str) -> Order | None:
    if reason in (ExitReason.STOP, ExitReason.ABORT):
        # Claimed already by the STOP (or X5) that enqueued this exit; the order is what is claimed here.
        return _claim(
            strategy,
            expected={"status__in": ACTIVE, "position": Position.EXITING, "exit_reason": reason},
            changes={},
            reason=Order.Reason(reason),
        )
    return _claim(
        strategy,
        expected={"status": Status.RUNNING, "position": Position.BOUGHT},
        changes={"position": Position.EXITING, "exit_reason": ExitReason.SELL},
        reason=Order.Reason.SELL,
    )


# --- E3 --------------------------------------------------------------------------------


def strategy_stoploss_execute(*, strategy_id: int) -> Order | None:
    """E3: claim BOUGHT -> EXITING(STOPLOSS) and place the exit; the SELL timer is
    cancelled. If a SELL (or STOP) already claimed the exit, nothing is placed."""
    strategy = _strategy(strategy_id)
    if strategy is None:
        return None
    emit(Event.E3_EXECUTE_STOPLOSS, strategy=strategy, payload=_about(strategy))
    with _locked(strategy, kind="STOPLOSS", wait=True) as held:
        if not held:
            return None
        order = _claim(
            strategy,
            expected={"status__in": ACTIVE, "position": Position.BOUGHT},
            changes={"position": Position.EXITING, "exit_reason": ExitReason.STOPLOSS},
            reason=Order.Reason.STOPLOSS,
        )
        if order is None:
            logger.info("stop-loss places nothing: the exit is already claimed", extra={"strategy_id": strategy.pk})
            return position_resume(strategy, Order.Side.SELL)
        try:
            scheduling.unschedule_strategy(strategy)
        except Exception:  # the SELL that may still fire finds the exit claimed; never delay the exit for this
            logger.exception("cancelling the SELL timer failed", extra={"strategy_id": strategy.pk})
        return order_execute(strategy, order)


# --- after the broker ------------------------------------------------------------------


@contextmanager
def broker_adapter(strategy: Strategy) -> Iterator[BrokerAdapter]:
    """The account's adapter for one execution, its HTTP session closed afterwards."""
    adapter = adapter_for(strategy.broker_account)
    try:
        yield TimedAdapter(adapter)  # the adapter, its broker calls timed into the metrics
    finally:
        close = getattr(adapter, "close", None)
        if callable(close):
            close()


def order_execute(strategy: Strategy, order: Order) -> Order:
    with log_context(strategy_id=strategy.pk, order_id=order.pk):
        with broker_adapter(strategy) as adapter:
            order = order_place(order=order, strategy=strategy, adapter=adapter)
            if order.status == Order.Status.PLACED:
                order = order_follow(order=order, strategy=strategy, adapter=adapter)
        position_apply_outcome(strategy, order)
    return order


def position_resume(strategy: Strategy, side: Order.Side) -> Order | None:
    """Finish what an interrupted execution of ``side`` left (the caller holds the lock):
    a live order is settled by its tag and followed; a final one whose outcome never
    reached the position (the worker died between the two) is applied now."""
    order = _live_order(strategy, side)
    if order is None:
        strategy.refresh_from_db()
        waiting = Position.BUYING if side == Order.Side.BUY else Position.EXITING
        last = Order.objects.filter(strategy=strategy, side=side).order_by("-id").first()
        if strategy.position != waiting or strategy.status not in ACTIVE or last is None:
            return None
        if last.status == Order.Status.COMPLETE or side == Order.Side.BUY:
            position_apply_outcome(strategy, last)
        return last
    with broker_adapter(strategy) as adapter:
        if order.status != Order.Status.PLACED:
            found = order_lookup(order=order, adapter=adapter)
            if not found or not order_reconcile(order=order, strategy=strategy, adapter=adapter, grace=0):
                logger.warning("live order not found by tag: left to recovery", extra={"order_id": order.pk})
                return order
        order = order_follow(order=order, strategy=strategy, adapter=adapter)
    position_apply_outcome(strategy, order)
    return order


def position_apply_outcome(strategy: Strategy, order: Order) -> None:
    if order.is_live:
        alert_raise(
            kind="order_unsettled",
            key=f"order:{order.pk}",
            severity="warning",
            strategy=strategy,
            order=order,
            message=f"{order.reason} order {order.tag} is not final yet: it will be settled by recovery",
            payload=about(order, strategy),
        )
        return
    if order.side == Order.Side.BUY:
        if order.status == Order.Status.COMPLETE:
            _position_bought(strategy, order)
        else:
            _buy_failed(strategy, order)
        return
    if order.status == Order.Status.COMPLETE:
        reason = ExitReason(order.reason)
        if strategy_services.strategy_exit(
            strategy_id=strategy.pk,
            reason=reason,
            position=EXIT_POSITIONS.get(reason, Position.SOLD),
            at=timezone.now(),
        ):
            _record_outcome(strategy, order)
        return
    # The position is still open at the broker: the user (or an operator) must act.
    _record_outcome(strategy, order)
    order_alert(
        order=order,
        strategy=strategy,
        message=f"{order.reason} exit failed ({order.last_error}): the position is still open at the broker",
    )


# L1 names the strategy's trading action as EVENT-MAP does: BUY, SELL, SL or STOP (and ABORT, X5's exit).
_ACTIONS = {
    Order.Reason.BUY: "BUY",
    Order.Reason.SELL: "SELL",
    Order.Reason.STOPLOSS: "SL",
    Order.Reason.STOP: "STOP",
    Order.Reason.ABORT: "ABORT",
}


def _record_outcome(strategy: Strategy, order: Order) -> None:
    """L1: the outcome of one of the strategy's orders reached its position (once: the
    callers record it only when their position move won)."""
    action = _ACTIONS[Order.Reason(order.reason)]
    price = f" at {order.fill_price}" if order.fill_price is not None else ""
    emit(
        Event.L1_STRATEGY_EVENT_LOGGED,
        strategy=strategy,
        order=order,
        message=f"{action} {order.status.lower()}{price}",
        payload={
            **about(order, strategy),
            "action": action,
            "outcome": order.status,
            "fill_price": str(order.fill_price) if order.fill_price is not None else None,
        },
    )


def _position_bought(strategy: Strategy, order: Order) -> None:
    assert order.fill_price is not None
    trigger = strategy_services.stop_trigger_price(
        entry_price=order.fill_price,
        stop_loss_price=strategy.stop_loss_price,
        stop_loss_percent=strategy.stop_loss_percent,
    )
    fill = {"entry_price": order.fill_price, "stop_trigger_price": trigger}
    bought = strategy_services.strategy_transition(
        strategy_id=strategy.pk,
        expected={"status": Status.RUNNING, "position": Position.BUYING},
        changes={"position": Position.BOUGHT, **fill},
    )
    if not bought:
        # Stopped while the BUY was at the broker: the fill is exited at once (STOP).
        stopped = strategy_services.strategy_transition(
            strategy_id=strategy.pk,
            expected={"status": Status.STOPPED, "position": Position.BUYING},
            changes={"position": Position.EXITING, "exit_reason": ExitReason.STOP, **fill},
        )
        strategy.refresh_from_db()
        if stopped:
            _record_outcome(strategy, order)
            exit_order = _claim_exit(strategy, ExitReason.STOP)
            if exit_order is not None:
                order_execute(strategy, exit_order)
        return
    strategy.refresh_from_db()
    _record_outcome(strategy, order)
    instrument = redis_keys.instrument(strategy.exchange, strategy.symbol)
    stoploss_arm(strategy_id=strategy.pk, instrument=instrument, trigger_price=trigger)
    runtime.runtime_refresh(strategy)


def _buy_failed(strategy: Strategy, order: Order) -> None:
    """A BUY that ended without a fill: no position, and the strategy ends (REJECTED)."""
    strategy_services.strategy_transition(
        strategy_id=strategy.pk, expected={"position": Position.BUYING}, changes={"position": Position.NONE}
    )
    if strategy_services.strategy_exit(
        strategy_id=strategy.pk, reason=ExitReason.REJECTED, position=Position.NONE, at=timezone.now()
    ):
        _record_outcome(strategy, order)
        order_alert(
            order=order,
            strategy=strategy,
            message=f"BUY {order.status.lower()}: {order.last_error or 'no fill'}. The strategy has ended.",
        )
