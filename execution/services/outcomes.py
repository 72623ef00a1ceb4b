"""An order's outcome reaching its position, and the execution that gets it there (``order_execute``).
Exits are never abandoned: one that ended without selling everything is followed by another for the
rest, at once after a partial fill, else by settlement with backoff once the account can trade."""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from algotrader import redis_keys
from brokers.adapters.base import OrderType
from brokers.models import BrokerAccount
from execution.models import Order
from execution.services import protective
from execution.services.claims import (
    ACTIVE,
    EXIT_POSITIONS,
    ExitReason,
    Position,
    Status,
    position_claim,
    position_held_quantity,
    position_orders,
)
from execution.services.fills import order_follow
from execution.services.locks import ExecutionLock
from execution.services.orders import about, broker_outage_resolve, order_alert
from execution.services.placement import AcceptedHandOff, broker_adapter, failure_alert_due, order_place
from monitoring.events import Event
from monitoring.logging import log_context
from monitoring.services import alert_raise, alerts_resolve, emit
from strategies import runtime
from strategies import services as strategy_services
from strategies.exit_index import exits_arm_held, exits_at_fill
from strategies.models import Strategy
from strategies.stoploss_index import stoploss_arm

logger = logging.getLogger(__name__)


def order_execute(
    strategy: Strategy,
    order: Order,
    *,
    lock: ExecutionLock | None,
    rate_taken: bool = False,
    hand_off: AcceptedHandOff | None = None,
) -> Order:
    """Place ``order``, follow it until final and move the position, keeping alive ``lock``
    (the strategy's, held by the caller; None: an exit proceeding without it). ``hand_off``:
    once accepted, the order may go on to ``follow_order_task`` with the lock, and this
    returns it at once, still PENDING here."""
    with log_context(strategy_id=strategy.pk, order_id=order.pk):
        with broker_adapter(strategy) as adapter:
            if order.protective:
                # A stop-loss's rate slot (``rate_taken``) is spent on the modify: also an order write.
                order = protective.protective_execute(order=order, strategy=strategy, adapter=adapter, lock=lock)
                if order.is_live and order.order_type != OrderType.MARKET:
                    return order  # resting (or not settled yet: settlement's)
                request = {"modify_order": order.broker_order_id}
                if order.status == Order.Status.PLACED and hand_off and hand_off(order, order.broker_order_id, request):
                    return order  # the converted exit is followed by the follow task
            else:
                order = order_place(
                    order=order,
                    strategy=strategy,
                    adapter=adapter,
                    lock=lock,
                    rate_taken=rate_taken,
                    hand_off=hand_off,
                )
            if order.status == Order.Status.PENDING:
                return order  # handed off
            if order.status == Order.Status.PLACED:
                broker_outage_resolve(strategy=strategy)
                order = order_follow(order=order, strategy=strategy, adapter=adapter, lock=lock)
        position_apply_outcome(strategy, order, lock=lock)
    return order


def position_apply_latest_outcome(strategy: Strategy, order: Order, *, lock: ExecutionLock | None) -> None:
    """``position_apply_outcome`` for an order settled late (its follow, a pushed update): only
    while it is still the position's latest order of its side, else the position moved on past
    it (settled and replaced) and it moves nothing."""
    latest = position_orders(strategy, Order.Side(order.side)).order_by("-id").values_list("id", flat=True)
    if latest.first() == order.pk:
        position_apply_outcome(strategy, order, lock=lock)


def position_apply_outcome(strategy: Strategy, order: Order, *, lock: ExecutionLock | None) -> None:
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
    if order.reason == Order.Reason.EXCESS:
        return  # squares off a surfaced duplicate: the position itself does not move
    if order.side == Order.Side.BUY:
        if order.status == Order.Status.COMPLETE or order.filled_quantity > 0:
            _position_bought(strategy, order, lock)
        else:
            _buy_failed(strategy, order)
        return
    _exit_continue(strategy, order, lock)


def _position_bought(strategy: Strategy, order: Order, lock: ExecutionLock | None) -> None:
    assert order.fill_price is not None
    if order.filled_quantity < order.quantity:
        alert_raise(
            kind="partial_fill",
            key=f"order:{order.pk}",
            severity="warning",
            strategy=strategy,
            order=order,
            message=f"BUY filled {order.filled_quantity} of {order.quantity}: the position, its stop and its exit "
            f"are for {order.filled_quantity}",
            payload={**about(order, strategy), "filled_quantity": order.filled_quantity},
        )
    trigger = strategy_services.stop_trigger_price(
        entry_price=order.fill_price,
        stop_loss_price=strategy.stop_loss_price,
        stop_loss_percent=strategy.stop_loss_percent,
    )
    # The trail's stop (if higher), the target and the trail's start are fixed with the fill.
    fill = {
        "entry_price": order.fill_price,
        **exits_at_fill(strategy, entry_price=order.fill_price, fixed_stop=trigger),
    }
    trigger = fill["stop_trigger_price"] or trigger
    with transaction.atomic():  # the position's move and its L1 commit together
        bought = strategy_services.strategy_transition(
            strategy_id=strategy.pk,
            expected={"status": Status.RUNNING, "position": Position.BUYING},
            changes={"position": Position.BOUGHT, **fill},
        )
        # Stopped while the BUY was at the broker: the fill is exited at once (STOP).
        stopped = not bought and strategy_services.strategy_transition(
            strategy_id=strategy.pk,
            expected={"status": Status.STOPPED, "position": Position.BUYING},
            changes={"position": Position.EXITING, "exit_reason": ExitReason.STOP, **fill},
        )
        strategy.refresh_from_db()
        if bought or stopped:
            _record_outcome(strategy, order)
    if stopped:
        exit_order = exit_claim(strategy, ExitReason.STOP)
        if exit_order is not None:
            order_execute(strategy, exit_order, lock=lock)
    if not bought:
        return
    instrument = redis_keys.instrument(strategy.exchange, strategy.symbol)
    stoploss_arm(strategy_id=strategy.pk, instrument=instrument, trigger_price=trigger)
    exits_arm_held(strategy)
    runtime.runtime_refresh(strategy)
    protective.protective_place(strategy=strategy, lock=lock)


def _buy_failed(strategy: Strategy, order: Order) -> None:
    """A BUY that ended without a fill: no position, and the strategy ends (REJECTED)."""
    strategy_services.strategy_transition(
        strategy_id=strategy.pk, expected={"position": Position.BUYING}, changes={"position": Position.NONE}
    )
    if strategy_services.strategy_exit(
        strategy_id=strategy.pk,
        reason=ExitReason.REJECTED,
        position=Position.NONE,
        at=timezone.now(),
        record_with=partial(_record_outcome, order=order),
    ):
        order_alert(
            order=order,
            strategy=strategy,
            message=f"BUY {order.status.lower()}: {order.last_error or 'no fill'}. The strategy has ended.",
        )


def exit_claim(strategy: Strategy, reason: str) -> Order | None:
    if reason in (ExitReason.STOP, ExitReason.ABORT):
        # Claimed already by the STOP (or X5) that enqueued this exit; the order is what is claimed here.
        return position_claim(
            strategy,
            expected={"status__in": ACTIVE, "position": Position.EXITING, "exit_reason": reason},
            changes={},
            reason=Order.Reason(reason),
        )
    return position_claim(
        strategy,
        expected={"status": Status.RUNNING, "position": Position.BOUGHT},
        changes={"position": Position.EXITING, "exit_reason": ExitReason.SELL},
        reason=Order.Reason.SELL,
    )


def _exit_continue(strategy: Strategy, order: Order, lock: ExecutionLock | None) -> None:
    """After an exit order ended: flat, the strategy exits; part sold, the rest is placed
    at once (each round sells something, so this ends); nothing sold, the user is told
    once and settlement places it again (``position_exit_retry``)."""
    strategy.refresh_from_db()
    held = position_held_quantity(strategy)
    if held <= 0:
        if settings.PROTECTIVE_STOPS and not order.protective:
            # Flat by another order (the live-exit constraint makes this rare): nothing may rest.
            protective.protective_cancel_resting(strategy=strategy, keep=order)
        reason = ExitReason(order.reason)
        strategy_services.strategy_exit(
            strategy_id=strategy.pk,
            reason=reason,
            position=EXIT_POSITIONS.get(reason, Position.SOLD),
            at=timezone.now(),
            strategy=strategy,
            record_with=partial(_record_outcome, order=order),
        )
        _exit_alerts_resolve(strategy)
        return
    # A protective order that ended without selling everything (cancelled after a refused
    # conversion, or lost) is followed at once by a new SELL for the rest, as a partial fill is.
    sold_or_ended = order.filled_quantity > 0 or order.protective
    if sold_or_ended and strategy.position == Position.EXITING and strategy.status in ACTIVE:
        logger.info("exit ended short: the rest is exited", extra={"strategy_id": strategy.pk, "held": held})
        rest = _exit_claim_again(strategy, order)
        if rest is not None:
            order_execute(strategy, rest, lock=lock)
        return
    _record_outcome(strategy, order)
    _exit_failed_alert(strategy, order, held)


def _exit_failed_alert(strategy: Strategy, order: Order, held: int) -> None:
    status = account_status(strategy)
    if status != BrokerAccount.Status.ACTIVE:
        _alert_once(
            strategy,
            "exit_blocked",
            f"{order.reason} exit of {held} not placed: the broker account cannot trade "
            f"({status}). It is placed again as soon as you log in to your broker.",
            {**about(order, strategy), "held": held},
        )
        return
    if order.status == Order.Status.FAILED and not failure_alert_due(order):
        return  # a stop-loss settlement goes on placing: alerted once it has failed for long
    _alert_once(
        strategy,
        "exit_failed",
        f"{order.reason} exit failed ({order.last_error or order.status}): {held} still held at the broker. "
        "It is being placed again until the position is closed.",
        {**about(order, strategy), "held": held},
    )


def _alert_once(strategy: Strategy, alert: str, message: str, payload: dict[str, Any]) -> None:
    """One incident per strategy and kind until the position is closed: an exit retried
    every few seconds must not page the user every few seconds."""
    alert_raise(kind=alert, key=f"strategy:{strategy.pk}", strategy=strategy, message=message, payload=payload)


_EXIT_ALERTS = ("exit_failed", "exit_blocked")


def _exit_alerts_resolve(strategy: Strategy) -> None:
    alerts_resolve(kinds=_EXIT_ALERTS, key=f"strategy:{strategy.pk}", resolution="the position is closed")


def account_status(strategy: Strategy) -> str | None:
    """Read fresh: a new session (or an operator) changes it while the position waits."""
    return BrokerAccount.objects.filter(pk=strategy.broker_account_id).values_list("status", flat=True).first()


def _exit_claim_again(strategy: Strategy, last: Order | None) -> Order | None:
    """The next exit of a position still EXITING, for what is still held (a new tag)."""
    reason = strategy.exit_reason or ExitReason.SELL
    return position_claim(
        strategy,
        expected={"status__in": ACTIVE, "position": Position.EXITING, "exit_reason": reason},
        changes={},
        reason=Order.Reason(reason),
        again=True,
        retry_of=last,
    )


def _exit_retry_due(strategy: Strategy, last: Order) -> bool:
    """A stop-loss is placed again soonest, and backs off least; a partial fill's rest at once."""
    if last.filled_quantity > 0:
        return True
    failed = position_orders(strategy, Order.Side.SELL).filter(status__in=Order.FINAL, filled_quantity=0).count()
    cap = (
        settings.EXIT_RETRY_MAX_DELAY_SECONDS_STOPLOSS
        if strategy.exit_reason == ExitReason.STOPLOSS
        else settings.EXIT_RETRY_MAX_DELAY_SECONDS_SELL
    )
    delay = min(float(cap), float(settings.EXIT_RETRY_FIRST_DELAY_SECONDS) * 2 ** max(failed - 1, 0))
    return timezone.now() >= last.updated_at + timedelta(seconds=delay)


def position_exit_retry(strategy: Strategy, *, lock: ExecutionLock | None) -> Order | None:
    """An EXITING position with no live order (the caller holds the lock): flat, it ends;
    otherwise its exit is placed again once the account can trade and the backoff allows
    (the lost exit a STOP or X5 enqueued is placed here too). Returns the order placed."""
    last = position_orders(strategy, Order.Side.SELL).order_by("-id").first()
    held = position_held_quantity(strategy)
    if held <= 0 and last is not None:
        _exit_continue(strategy, last, lock)
        return last
    if account_status(strategy) != BrokerAccount.Status.ACTIVE:
        if last is not None:
            _exit_failed_alert(strategy, last, held)
        return None
    if last is not None and not _exit_retry_due(strategy, last):
        return None
    order = _exit_claim_again(strategy, last)
    if order is None:
        return None
    logger.warning("exit placed again", extra={"strategy_id": strategy.pk, "held": order.quantity})
    return order_execute(strategy, order, lock=lock)


# L1 names the strategy's trading action as EVENT-MAP does: BUY, SELL, SL or STOP (and ABORT, X5's exit).
_ACTIONS = {
    Order.Reason.BUY: "BUY",
    Order.Reason.SELL: "SELL",
    Order.Reason.STOPLOSS: "SL",
    Order.Reason.STOP: "STOP",
    Order.Reason.ABORT: "ABORT",
    Order.Reason.TARGET: "TARGET",
    Order.Reason.TRAIL: "TRAIL",
    Order.Reason.EXCESS: "EXCESS",
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
