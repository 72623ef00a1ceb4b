"""The three executions (E1 BUY, E2 SELL or STOP, E3 stop-loss) and the position moves
they make. Each takes the strategy's lock (X2, or X3 on conflict), then claims the
position with a compare-and-set and inserts the PENDING order in the same transaction,
commits, and only then calls the broker; the position moves again only once the order
is final. Exactly one exit order exists per position: the exit claim (BOUGHT ->
EXITING) is won once, and the live-exit constraint backs it up.

What a position holds is what its orders filled (BUY fills minus SELL fills): a BUY
partially filled then cancelled holds what filled, and its stop and exit use that.

Exits are never abandoned. An exit that ended without selling everything is followed
by another for the rest, never two live at once (the live-exit constraint):
- it filled part: the rest is placed at once;
- it failed for a reason that may pass (429, outage, lost, a rejection by the broker's
  RMS, retries exhausted): the user is alerted once (``exit_failed``) and settlement
  places it again, a stop-loss at most EXIT_RETRY_MAX_DELAY_SECONDS_STOPLOSS after the
  last try, a SELL/STOP/ABORT backing off to EXIT_RETRY_MAX_DELAY_SECONDS_SELL, until the
  position is flat;
- the account cannot trade (session expired, disabled): the position stays EXITING, the
  user is alerted once (``exit_blocked``), and the exit is placed again by the first
  settlement round after the account is active again (a new session).
A lost order that surfaces later (``orders.order_surfaced_check``) is squared off: what
it filled beyond what the position should hold is sold (or bought back) with an EXCESS
order, so the strategy ends holding what the broker holds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet, Sum
from django.utils import timezone

from algotrader import redis_keys
from algotrader.celery import app
from brokers.adapters.base import BrokerAdapter
from brokers.adapters.registry import shared_adapter_for
from brokers.models import BrokerAccount
from execution.exceptions import OrderConflict
from execution.models import Order
from execution.services import locks, safety
from execution.services.orders import (
    about,
    broker_outage_resolve,
    order_accepted,
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
from monitoring.services import Emission, alert_raise, alerts_resolve, emit, emit_many
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
    try:
        # get(), not first(): no ORDER BY to compile and run on the stop-loss's first query.
        # Events name the owner by id: the owner row is not read (an alert loads it if raised).
        return Strategy.objects.select_related("broker_account").get(pk=strategy_id)
    except Strategy.DoesNotExist:
        logger.warning("executed strategy no longer exists", extra={"strategy_id": strategy_id})
        return None


def _about(strategy: Strategy) -> dict[str, Any]:
    return {"strategy_id": strategy.pk, "symbol": redis_keys.instrument(strategy.exchange, strategy.symbol)}


@dataclass
class _Held:
    """What ``_locked`` yields: whether the lock is held; the events of the execution's
    start (E3 and X2) not recorded yet, which the claim records in its own transaction;
    and the key of the order-rate slot taken with the lock, if one was."""

    held: bool
    pending: list[Emission] = field(default_factory=list)
    rate_key: str | None = None

    def __bool__(self) -> bool:
        return self.held

    def record(self) -> None:
        """Record what is still pending (a path that claims nothing, before anything else)."""
        pending, self.pending = self.pending, []
        if pending:
            emit_many(pending)

    def release_rate(self) -> None:
        """Give back the rate slot of an order that is not placed after all."""
        rate_key, self.rate_key = self.rate_key, None
        if rate_key is not None:
            safety.order_rate_give_back(rate_key=rate_key)


@contextmanager
def _locked(strategy: Strategy, *, kind: str, wait: bool, start: Emission | None = None) -> Iterator[_Held]:
    """Yield a truthy ``_Held`` with ``lock_state:{id}`` held. A duplicate BUY gives up on
    conflict; an exit waits for the holder (a BUY still following its fill) since it must
    not be lost. ``start``: the stop-loss's E3, deferred with X2 to the claim's transaction;
    its lock comes with its order-rate slot, in one round trip."""
    rate_key = None
    if start is None:
        token = locks.lock_acquire(strategy_id=strategy.pk)
    else:
        token, rate_key = safety.lock_and_rate_take(
            strategy_id=strategy.pk, account=strategy.broker_account, reason=Order.Reason.STOPLOSS
        )
    pending = [start] if start is not None else []
    if token is None:
        if start is not None and _exit_claimed(strategy):
            # A duplicate (or a redelivery) of an exit already claimed: its holder (the
            # follower of that exit) finishes it, and this stop-loss slot is not held waiting.
            wait = False
        emit_many([*pending, _emission(Event.X3_LOCK_CONFLICT, strategy, kind=kind, waits=wait)])
        pending = []
        if wait:
            timeout = settings.ORDER_FOLLOW_SECONDS + settings.ORDER_RETRY_SECONDS_BUY
            token = locks.lock_wait(strategy_id=strategy.pk, timeout=timeout)
            if token is None:
                # A holder this slow is most likely a dead worker whose lock has not expired:
                # an exit must not be lost to it, and the database claim still allows only one.
                logger.warning("exit proceeds without the lock", extra={"strategy_id": strategy.pk, "kind": kind})
                yield _Held(True)
                return
        if token is None:
            yield _Held(False)
            return
    acquired = _emission(Event.X2_LOCK_ACQUIRED, strategy, kind=kind)
    if start is None:
        emit_many([acquired])
        held = _Held(True)
    else:
        held = _Held(True, [*pending, acquired], rate_key)
    with locks.lock_held(strategy_id=strategy.pk, token=token):
        try:
            yield held
        finally:
            if held.pending:  # an error before the claim: the timeline still shows the start
                try:
                    held.record()
                except Exception:
                    logger.exception("start of an execution not recorded", extra={"strategy_id": strategy.pk})


def _exit_claimed(strategy: Strategy) -> bool:
    return not Strategy.objects.filter(pk=strategy.pk, position__in=(Position.BUYING, Position.BOUGHT)).exists()


def _emission(event: Event, strategy: Strategy, **payload: Any) -> Emission:
    return Emission(event, user_id=strategy.owner_id, strategy_id=strategy.pk, payload={**_about(strategy), **payload})


def _live_order(strategy: Strategy, side: Order.Side) -> Order | None:
    return Order.objects.filter(strategy=strategy, side=side, status__in=Order.LIVE).first()


def _position_orders(strategy: Strategy, side: Order.Side) -> QuerySet[Order]:
    """The orders of the position itself on ``side``: the BUY, the exits; not EXCESS."""
    return Order.objects.filter(strategy=strategy, side=side).exclude(reason=Order.Reason.EXCESS)


def position_held_quantity(strategy: Strategy, *, opened: bool | None = None) -> int:
    """What the broker holds for this strategy: every fill bought minus every fill sold,
    surfaced duplicates and EXCESS squares included. A position that was opened (got past
    BUYING; ``opened`` says so when the caller knows) with no fill on record (set by hand,
    or filled before fills were recorded) held the plan."""
    totals = dict(
        Order.objects.filter(strategy=strategy, filled_quantity__gt=0)
        .order_by()
        .values("side")
        .annotate(total=Sum("filled_quantity"))
        .values_list("side", "total")
    )
    bought, sold = int(totals.get(Order.Side.BUY, 0)), int(totals.get(Order.Side.SELL, 0))
    if opened is None:
        opened = strategy.position not in (Position.NONE, Position.BUYING)
    if bought == 0 and opened:
        bought = strategy.quantity
    return bought - sold


def _position_target(strategy: Strategy) -> int:
    """What the strategy should hold: its own BUY's fill while BOUGHT, nothing once ended
    (surfaced duplicates are not the position's; EXITING sells whatever is held)."""
    if strategy.position != Position.BOUGHT:
        return 0
    own = (
        Order.objects.filter(
            strategy=strategy, side=Order.Side.BUY, reason=Order.Reason.BUY, surfaced_at__isnull=True
        ).aggregate(total=Sum("filled_quantity"))["total"]
        or 0
    )
    return int(own) or strategy.quantity


# The exit claim's one read (PostgreSQL): exits already out, BUY fills, SELL fills, and the
# next order id (an aggregate without GROUP BY is one row: nextval runs once).
_EXIT_BASIS_SQL = """
SELECT COUNT(*) FILTER (WHERE side = %s AND reason <> %s AND status = ANY(%s)),
       COALESCE(SUM(filled_quantity) FILTER (WHERE side = %s), 0),
       COALESCE(SUM(filled_quantity) FILTER (WHERE side = %s), 0),
       nextval(pg_get_serial_sequence('execution_order', 'id'))
FROM execution_order WHERE strategy_id = %s
"""


def _exit_basis(strategy: Strategy, *, again: bool) -> tuple[bool, int, int]:
    """For an exit's claim, under the row lock its transition took: whether an exit is out
    already (live, or, for a first exit, filled), what is held, and an id
    reserved for the exit's order (so its tag goes in with the INSERT), all in one query."""
    out_statuses = Order.LIVE if again else (*Order.LIVE, Order.Status.COMPLETE)
    with connection.cursor() as cursor:
        cursor.execute(
            _EXIT_BASIS_SQL,
            ["SELL", "EXCESS", [str(status) for status in out_statuses], "BUY", "SELL", strategy.pk],
        )
        out, bought, sold, order_id = cursor.fetchone()
    # As ``position_held_quantity`` for an opened position: no fill on record held the plan.
    return bool(out), int(bought or strategy.quantity) - int(sold), int(order_id)


def _claim(
    strategy: Strategy,
    *,
    expected: dict[str, Any],
    changes: dict[str, Any],
    reason: Order.Reason,
    again: bool = False,
    held: _Held | None = None,
    **order: Any,
) -> Order | None:
    """The position claim and the order intent, committed together; None if lost. An exit
    sells what is held, read under the row lock the transition took; ``again``: the exit
    that follows one that ended without selling everything. ``held``: its pending start
    events are recorded in the same transaction when the claim wins (left pending if not)."""
    try:
        with transaction.atomic():
            if not strategy_services.strategy_transition(strategy_id=strategy.pk, expected=expected, changes=changes):
                return None
            if reason != Order.Reason.BUY:
                out, quantity, order["order_id"] = _exit_basis(strategy, again=again)
                if out:
                    # The row lock the transition took serialises this check: the exit is already out.
                    transaction.set_rollback(True)
                    return None
                order["quantity"] = quantity
                if quantity <= 0:
                    transaction.set_rollback(True)
                    return None
            # A conflict raises out of this transaction and rolls it back whole: no savepoint.
            created = order_create(strategy=strategy, reason=reason, savepoint=False, **order)
            if held is not None and held.pending:
                emit_many(held.pending)
                held.pending = []
            return created
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
            scheduling.strategies_end_unbought(strategy_ids=[strategy.pk])  # the late policy: nothing left to do
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


def strategy_stoploss_execute(*, strategy_id: int, hand_off: bool = False) -> Order | None:
    """E3: claim BOUGHT -> EXITING(STOPLOSS) and place the exit; the SELL timer is
    cancelled. If a SELL (or STOP) already claimed the exit, nothing is placed.

    The path to the broker is kept short: the lock and the order-rate slot in one Redis
    round trip, then one transaction for the claim, the order intent (its tag in the
    INSERT) and E3 + X2, then the POST. ``hand_off`` (the task's way): once the broker
    has accepted the exit, its fill is followed and the position moved by
    ``position_follow`` on another worker, so that this slot is free for the next stop."""
    strategy = _strategy(strategy_id)
    if strategy is None:
        return None
    start = _emission(Event.E3_EXECUTE_STOPLOSS, strategy)
    with _locked(strategy, kind="STOPLOSS", wait=True, start=start) as held:
        if not held:
            return None
        order = _claim(
            strategy,
            expected={"status__in": ACTIVE, "position": Position.BOUGHT},
            changes={"position": Position.EXITING, "exit_reason": ExitReason.STOPLOSS},
            reason=Order.Reason.STOPLOSS,
            held=held,
        )
        if order is None:
            held.record()
            held.release_rate()
            logger.info("stop-loss places nothing: the exit is already claimed", extra={"strategy_id": strategy.pk})
            return position_resume(strategy, Order.Side.SELL)
        # No timer work before the order: the SELL's slot goes with S5 (``strategy_exit``),
        # and a SELL firing meanwhile finds the exit claimed.
        return order_execute(strategy, order, rate_taken=held.rate_key is not None, hand_off=hand_off)


# --- after the broker ------------------------------------------------------------------


@contextmanager
def broker_adapter(strategy: Strategy) -> Iterator[BrokerAdapter]:
    """The account's adapter for one execution: the process's shared one, whose warm
    connection saves the stop-loss a TCP handshake; the registry owns (never close) it.
    Its broker calls are timed into the metrics."""
    yield TimedAdapter(shared_adapter_for(strategy.broker_account))


def order_execute(strategy: Strategy, order: Order, *, rate_taken: bool = False, hand_off: bool = False) -> Order:
    """Place ``order``, follow it until final and move the position (the caller holds the
    lock). ``hand_off``: as soon as the broker has accepted it, recording that, following
    the fill and moving the position go to ``follow_order_task`` with the lock, and this
    returns the order (still PENDING here) at once."""
    with log_context(strategy_id=strategy.pk, order_id=order.pk):
        with broker_adapter(strategy) as adapter:
            handing = partial(_follow_hand_off, strategy) if hand_off else None
            order = order_place(
                order=order, strategy=strategy, adapter=adapter, rate_taken=rate_taken, hand_off=handing
            )
            if order.status == Order.Status.PENDING:
                return order  # handed off
            if order.status == Order.Status.PLACED:
                broker_outage_resolve(strategy=strategy)
                order = order_follow(order=order, strategy=strategy, adapter=adapter)
        position_apply_outcome(strategy, order)
    return order


def _follow_hand_off(strategy: Strategy, order: Order, broker_order_id: str, request: dict[str, Any]) -> bool:
    """Send the accepted order, with the strategy's lock, to a follow task; False (the
    caller goes on itself) if it could not be sent. Should this worker die before the
    task is sent, settlement finds the order live and its lock expired, looks it up by its
    tag and settles it (``recovery.orders_settle_interrupted``), as any interrupted order."""
    from execution.tasks import follow_order_task  # the tasks module imports these services

    token = locks.lock_token()
    if token is None:
        return False  # proceeding without the lock: nothing to hand over, go on here
    try:
        # The task and its sent event in one Redis pipeline (kombu's Producer.batch).
        with app.producer_or_acquire() as producer, producer.batch():
            follow_order_task.apply_async(
                (order.pk, token, broker_order_id, request),
                {"strategy_id": strategy.pk, "accepted_at": time.time()},
                producer=producer,
            )
    except Exception:
        logger.warning("follow task not sent: followed here", extra={"order_id": order.pk}, exc_info=True)
        return False
    locks.lock_hand_over()
    return True


def _order_read(order_id: int) -> Order | None:
    return Order.objects.select_related("strategy__broker_account").filter(pk=order_id).first()


def position_follow(
    *,
    order_id: int,
    lock_token: str,
    broker_order_id: str = "",
    request: dict[str, Any] | None = None,
    strategy_id: int | None = None,
    accepted_at: float | None = None,
) -> Order | None:
    """Finish an execution handed over once the broker accepted its order: take over the
    strategy's lock, record the acceptance (PLACED with ``broker_order_id``, L2, B3),
    follow the order until final (E5) and move the position (S5, L1, the alerts), as the
    execution would have done itself. Safe to run twice, and after settlement got there
    first: an order adopted or final is not recorded or followed again, and only the
    position's latest order of its side moves it (an outcome already applied is a no-op).
    ``strategy_id`` (sent with the hand-off): the lock is taken over first, and the order
    read once, under it; without it (or if the lock was taken meanwhile) the order is read
    to find its strategy and read again under the lock. ``accepted_at``: when the broker
    took the order (``order_follow`` polls it once it is old enough to have an answer)."""
    if strategy_id is not None and locks.lock_take_over(strategy_id=strategy_id, token=lock_token):
        with locks.lock_held(strategy_id=strategy_id, token=lock_token):
            order = _order_read(order_id)
            if order is None or order.strategy_id != strategy_id:
                return None
            with log_context(strategy_id=strategy_id, order_id=order.pk):
                return _follow_held(order, order.strategy, broker_order_id, request, accepted_at)
    order = _order_read(order_id)
    if order is None:
        return None
    strategy = order.strategy
    with log_context(strategy_id=strategy.pk, order_id=order.pk), _taken_over(strategy, lock_token) as held:
        if not held:
            return None
        order.refresh_from_db()
        return _follow_held(order, strategy, broker_order_id, request, accepted_at)


def _follow_held(
    order: Order, strategy: Strategy, broker_order_id: str, request: dict[str, Any] | None, accepted_at: float | None
) -> Order | None:
    """``position_follow`` with the lock held and ``order`` read under it."""
    if broker_order_id and order.status in (Order.Status.PENDING, Order.Status.UNKNOWN):
        order_accepted(order=order, strategy=strategy, broker_order_id=broker_order_id, request=request or {})
    if order.status == Order.Status.PLACED:
        with broker_adapter(strategy) as adapter:
            broker_outage_resolve(strategy=strategy)
            order = order_follow(order=order, strategy=strategy, adapter=adapter, accepted_at=accepted_at)
    elif order.is_live:
        return order  # not placed (yet): only a lookup by its tag can settle it, settlement's
    latest = _position_orders(strategy, Order.Side(order.side)).order_by("-id").values_list("id", flat=True)
    if latest.first() != order.pk:
        return order  # the position has moved on past this order (settled and replaced)
    position_apply_outcome(strategy, order)
    return order


@contextmanager
def _taken_over(strategy: Strategy, token: str) -> Iterator[bool]:
    """The handed-over lock, renewed; if another worker took it meanwhile (the follow task
    waited out its life), the lock as an exit takes it: waiting for that holder."""
    if locks.lock_take_over(strategy_id=strategy.pk, token=token):
        with locks.lock_held(strategy_id=strategy.pk, token=token):
            yield True
        return
    with _locked(strategy, kind="FOLLOW", wait=True) as held:
        yield bool(held)


def position_resume(strategy: Strategy, side: Order.Side) -> Order | None:
    """Finish what an interrupted execution of ``side`` left (the caller holds the lock):
    a live order is settled by its tag and followed; a final one whose outcome never
    reached the position (the worker died between the two) is applied now."""
    order = _live_order(strategy, side)
    if order is None:
        strategy.refresh_from_db()
        waiting = Position.BUYING if side == Order.Side.BUY else Position.EXITING
        if strategy.position != waiting or strategy.status not in ACTIVE:
            return None
        if side == Order.Side.SELL:
            return position_exit_retry(strategy)
        last = _position_orders(strategy, side).order_by("-id").first()
        if last is not None:
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
    if order.reason == Order.Reason.EXCESS:
        return  # squares off a surfaced duplicate: the position itself does not move
    if order.side == Order.Side.BUY:
        if order.status == Order.Status.COMPLETE or order.filled_quantity > 0:
            _position_bought(strategy, order)
        else:
            _buy_failed(strategy, order)
        return
    _exit_continue(strategy, order)


def _exit_continue(strategy: Strategy, order: Order) -> None:
    """After an exit order ended: flat, the strategy exits; part sold, the rest is placed
    at once (each round sells something, so this ends); nothing sold, the user is told
    once and settlement places it again (``position_exit_retry``)."""
    strategy.refresh_from_db()
    held = position_held_quantity(strategy)
    if held <= 0:
        reason = ExitReason(order.reason)
        if strategy_services.strategy_exit(
            strategy_id=strategy.pk,
            reason=reason,
            position=EXIT_POSITIONS.get(reason, Position.SOLD),
            at=timezone.now(),
            strategy=strategy,
        ):
            _record_outcome(strategy, order)
        _exit_alerts_resolve(strategy)
        return
    if order.filled_quantity > 0 and strategy.position == Position.EXITING and strategy.status in ACTIVE:
        logger.info("exit partly filled: the rest is exited", extra={"strategy_id": strategy.pk, "held": held})
        rest = _claim_exit_again(strategy, order)
        if rest is not None:
            order_execute(strategy, rest)
        return
    _record_outcome(strategy, order)
    _exit_failed_alert(strategy, order, held)


def _exit_failed_alert(strategy: Strategy, order: Order, held: int) -> None:
    status = _account_status(strategy)
    if status != BrokerAccount.Status.ACTIVE:
        _alert_once(
            strategy,
            "exit_blocked",
            f"{order.reason} exit of {held} not placed: the broker account cannot trade "
            f"({status}). It is placed again as soon as you log in to your broker.",
            {**about(order, strategy), "held": held},
        )
        return
    _alert_once(
        strategy,
        "exit_failed",
        f"{order.reason} exit failed ({order.last_error or order.status}): {held} still held at the broker. "
        "It is being placed again until the position is closed.",
        {**about(order, strategy), "held": held},
    )


# L1 names the strategy's trading action as EVENT-MAP does: BUY, SELL, SL or STOP (and ABORT, X5's exit).
_ACTIONS = {
    Order.Reason.BUY: "BUY",
    Order.Reason.SELL: "SELL",
    Order.Reason.STOPLOSS: "SL",
    Order.Reason.STOP: "STOP",
    Order.Reason.ABORT: "ABORT",
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


def _alert_once(strategy: Strategy, alert: str, message: str, payload: dict[str, Any]) -> None:
    """One incident per strategy and kind until the position is closed: an exit retried
    every few seconds must not page the user every few seconds."""
    alert_raise(kind=alert, key=f"strategy:{strategy.pk}", strategy=strategy, message=message, payload=payload)


_EXIT_ALERTS = ("exit_failed", "exit_blocked")


def _exit_alerts_resolve(strategy: Strategy) -> None:
    alerts_resolve(kinds=_EXIT_ALERTS, key=f"strategy:{strategy.pk}", resolution="the position is closed")


def _account_status(strategy: Strategy) -> str | None:
    """Read fresh: a new session (or an operator) changes it while the position waits."""
    return BrokerAccount.objects.filter(pk=strategy.broker_account_id).values_list("status", flat=True).first()


def _claim_exit_again(strategy: Strategy, last: Order | None) -> Order | None:
    """The next exit of a position still EXITING, for what is still held (a new tag)."""
    reason = strategy.exit_reason or ExitReason.SELL
    return _claim(
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
    failed = _position_orders(strategy, Order.Side.SELL).filter(status__in=Order.FINAL, filled_quantity=0).count()
    cap = (
        settings.EXIT_RETRY_MAX_DELAY_SECONDS_STOPLOSS
        if strategy.exit_reason == ExitReason.STOPLOSS
        else settings.EXIT_RETRY_MAX_DELAY_SECONDS_SELL
    )
    delay = min(float(cap), float(settings.EXIT_RETRY_FIRST_DELAY_SECONDS) * 2 ** max(failed - 1, 0))
    return timezone.now() >= last.updated_at + timedelta(seconds=delay)


def position_exit_retry(strategy: Strategy) -> Order | None:
    """An EXITING position with no live order (the caller holds the lock): flat, it ends;
    otherwise its exit is placed again once the account can trade and the backoff allows
    (the lost exit a STOP or X5 enqueued is placed here too). Returns the order placed."""
    last = _position_orders(strategy, Order.Side.SELL).order_by("-id").first()
    held = position_held_quantity(strategy)
    if held <= 0 and last is not None:
        _exit_continue(strategy, last)
        return last
    if _account_status(strategy) != BrokerAccount.Status.ACTIVE:
        if last is not None:
            _exit_failed_alert(strategy, last, held)
        return None
    if last is not None and not _exit_retry_due(strategy, last):
        return None
    order = _claim_exit_again(strategy, last)
    if order is None:
        return None
    logger.warning("exit placed again", extra={"strategy_id": strategy.pk, "held": order.quantity})
    return order_execute(strategy, order)


def position_square_excess(strategy: Strategy) -> Order | None:
    """Square off what surfaced duplicates filled beyond what the strategy should hold (the
    caller holds the lock): an EXCESS SELL of the surplus, or an EXCESS BUY of what was sold
    twice. Left to the exit while BUYING or EXITING, and while any order is live, and
    held back while the account cannot trade (it would only be refused)."""
    if _account_status(strategy) != BrokerAccount.Status.ACTIVE:
        return None
    with transaction.atomic():
        locked = Strategy.objects.select_for_update().filter(pk=strategy.pk).first()
        if locked is None or locked.position in (Position.BUYING, Position.EXITING):
            return None
        if Order.objects.filter(strategy=locked, status__in=Order.LIVE).exists():
            return None
        excess = position_held_quantity(locked) - _position_target(locked)
        if excess == 0:
            return None
        last = Order.objects.filter(strategy=locked, reason=Order.Reason.EXCESS).order_by("-id").first()
        if last is not None and timezone.now() < last.updated_at + timedelta(
            seconds=settings.EXIT_RETRY_MAX_DELAY_SECONDS_SELL
        ):
            return None  # the last square-off failed moments ago: back off as a SELL does
        order = order_create(
            strategy=locked,
            reason=Order.Reason.EXCESS,
            side=Order.Side.SELL if excess > 0 else Order.Side.BUY,
            quantity=abs(excess),
        )
    logger.warning("squaring off a surfaced duplicate", extra={"strategy_id": strategy.pk, "excess": excess})
    return order_execute(strategy, order)


def _position_bought(strategy: Strategy, order: Order) -> None:
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
