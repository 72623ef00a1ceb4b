"""Taking a strategy for an execution: its lock (X2, or X3), then the position claim, a
compare-and-set committed with the PENDING order; and what a position holds (its fills). One
exit per position: the exit claim (BOUGHT -> EXITING) is won once, the live-exit constraint backs it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet, Sum

from algotrader import redis_keys
from execution.exceptions import OrderConflict
from execution.models import Order
from execution.services import locks, safety
from execution.services.locks import ExecutionLock
from execution.services.orders import order_create
from monitoring.events import Event
from monitoring.services import Emission, emit_many
from strategies import services as strategy_services
from strategies.models import Strategy

logger = logging.getLogger(__name__)

Status = Strategy.Status
Position = Strategy.Position
ExitReason = Strategy.ExitReason
ACTIVE = (Status.RUNNING, Status.STOPPED)
EXIT_POSITIONS = {ExitReason.STOPLOSS: Position.EXITED_BY_SL, ExitReason.TRAIL: Position.EXITED_BY_SL}


def strategy_read(strategy_id: int) -> Strategy | None:
    """The strategy an execution acts on; None if it is gone or has exited (S5 is final: a
    late or duplicate delivery does nothing and records nothing after it)."""
    try:
        # get(), not first(): no ORDER BY to compile and run on the stop-loss's first query.
        # Events name the owner by id: the owner row is not read (an alert loads it if raised).
        strategy = Strategy.objects.select_related("broker_account").get(pk=strategy_id)
    except Strategy.DoesNotExist:
        logger.warning("executed strategy no longer exists", extra={"strategy_id": strategy_id})
        return None
    if strategy.status == Status.EXITED:
        logger.info("strategy has exited: nothing to execute", extra={"strategy_id": strategy_id})
        return None
    return strategy


def strategy_about(strategy: Strategy) -> dict[str, Any]:
    return {"strategy_id": strategy.pk, "symbol": redis_keys.instrument(strategy.exchange, strategy.symbol)}


@dataclass
class Held:
    """What ``strategy_locked`` yields: whether the strategy may proceed; its lock (None: an
    exit proceeding without it); the events of the execution's start (E3 and X2) not
    recorded yet, which the claim records in its own transaction."""

    held: bool
    lock: ExecutionLock | None = None
    pending: list[Emission] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.held

    @property
    def rate_taken(self) -> bool:
        """Whether a slot in the account's order rate was taken with the lock."""
        return self.lock is not None and self.lock.rate_key is not None

    def record(self) -> None:
        """Record what is still pending (a path that claims nothing, before anything else)."""
        pending, self.pending = self.pending, []
        if pending:
            emit_many(pending)

    def release_rate(self) -> None:
        """Give back the rate slot of an order that is not placed after all."""
        if self.lock is not None:
            self.lock.rate_give_back()


@contextmanager
def strategy_locked(strategy: Strategy, *, kind: str, wait: bool, start: Emission | None = None) -> Iterator[Held]:
    """Yield a truthy ``Held`` with ``lock_state:{id}`` held. A duplicate BUY gives up on
    conflict; an exit waits for the holder (a BUY still following its fill) since it must
    not be lost. ``start``: the stop-loss's E3, deferred with X2 to the claim's transaction;
    its lock is taken together with its order-rate slot."""
    if start is None:
        lock = locks.lock_acquire(strategy_id=strategy.pk)
    else:
        lock = safety.lock_and_rate_take(
            strategy_id=strategy.pk, account=strategy.broker_account, reason=Order.Reason.STOPLOSS
        )
    pending = [start] if start is not None else []
    if lock is None:
        if start is not None and _exit_claimed(strategy):
            # A duplicate (or a redelivery) of an exit already claimed: its holder (the
            # follower of that exit) finishes it, so this stop-loss executes nothing (no E3)
            # and its slot is not held waiting.
            wait, pending = False, []
        emit_many([*pending, strategy_emission(Event.X3_LOCK_CONFLICT, strategy, kind=kind, waits=wait)])
        pending = []
        if wait:
            timeout = settings.ORDER_FOLLOW_SECONDS + settings.ORDER_RETRY_SECONDS_BUY
            lock = locks.lock_wait(strategy_id=strategy.pk, timeout=timeout)
            if lock is None:
                # A holder this slow is most likely a dead worker whose lock has not expired:
                # an exit must not be lost to it, and the database claim still allows only one.
                logger.warning("exit proceeds without the lock", extra={"strategy_id": strategy.pk, "kind": kind})
                yield Held(True)
                return
        if lock is None:
            yield Held(False)
            return
    acquired = strategy_emission(Event.X2_LOCK_ACQUIRED, strategy, kind=kind)
    if start is None:
        emit_many([acquired])
        held = Held(True, lock)
    else:
        held = Held(True, lock, [*pending, acquired])
    with lock:
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


def strategy_emission(event: Event, strategy: Strategy, **payload: Any) -> Emission:
    return Emission(
        event, user_id=strategy.owner_id, strategy_id=strategy.pk, payload={**strategy_about(strategy), **payload}
    )


def live_order(strategy: Strategy, side: Order.Side) -> Order | None:
    return Order.objects.filter(strategy=strategy, side=side, status__in=Order.LIVE).first()


def position_orders(strategy: Strategy, side: Order.Side) -> QuerySet[Order]:
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


def position_target(strategy: Strategy) -> int:
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


# The exit claim's one read (PostgreSQL): exits already out (a resting protective order is not
# one for a first exit: it is converted), the live protective order, BUY fills, SELL fills, and
# the next order id (an aggregate without GROUP BY is one row: nextval runs once).
_EXIT_BASIS_SQL = """
SELECT COUNT(*) FILTER (WHERE side = %s AND reason <> %s AND status = ANY(%s)
                        AND NOT (%s AND protective AND status = ANY(%s))),
       MAX(id) FILTER (WHERE protective AND status = ANY(%s)),
       COALESCE(SUM(filled_quantity) FILTER (WHERE side = %s), 0),
       COALESCE(SUM(filled_quantity) FILTER (WHERE side = %s), 0),
       nextval(pg_get_serial_sequence('execution_order', 'id'))
FROM execution_order WHERE strategy_id = %s
"""


@dataclass(frozen=True)
class ExitBasis:
    out: bool  # an exit is out already
    protective_id: int | None  # the live protective order, converted by a first exit
    held: int
    order_id: int  # reserved for a new exit's order


def _exit_basis(strategy: Strategy, *, again: bool) -> ExitBasis:
    """For an exit's claim, under the row lock its transition took: whether an exit is out
    already (live, or, for a first exit, filled), the live protective order, what is held,
    and an id reserved for the exit's order (so its tag goes in with the INSERT), in one query."""
    out_statuses = Order.LIVE if again else (*Order.LIVE, Order.Status.COMPLETE)
    live = [str(status) for status in Order.LIVE]
    with connection.cursor() as cursor:
        cursor.execute(
            _EXIT_BASIS_SQL,
            [
                "SELL",
                "EXCESS",
                [str(status) for status in out_statuses],
                not again,
                live,
                live,
                "BUY",
                "SELL",
                strategy.pk,
            ],
        )
        out, protective_id, bought, sold, order_id = cursor.fetchone()
    # As ``position_held_quantity`` for an opened position: no fill on record held the plan.
    return ExitBasis(bool(out), protective_id, int(bought or strategy.quantity) - int(sold), int(order_id))


def _protective_claim(order_id: int, reason: Order.Reason) -> Order | None:
    """A first exit converts the resting protective order instead of inserting a SELL: the
    reason that claimed it is recorded on it (``protective.protective_execute`` converts it)."""
    if not Order.objects.filter(pk=order_id, status__in=Order.LIVE).update(reason=reason):
        return None
    return Order.objects.get(pk=order_id)


def position_claim(
    strategy: Strategy,
    *,
    expected: dict[str, Any],
    changes: dict[str, Any],
    reason: Order.Reason,
    again: bool = False,
    held: Held | None = None,
    check: Callable[[], dict[str, Any]] | None = None,
    **order: Any,
) -> Order | None:
    """The position claim and the order intent, committed together; None if lost. An exit
    sells what is held, read under the row lock the transition took; ``again``: the exit
    that follows one that ended without selling everything. ``held``: its pending start
    events are recorded in the same transaction when the claim wins (left pending if not).
    ``check``: the BUY's risk limits, first in the transaction; what it raises ends the claim
    before anything is written, what it returns goes on the order."""
    try:
        with transaction.atomic():
            if check is not None:
                order.update(check())
            if not strategy_services.strategy_transition(strategy_id=strategy.pk, expected=expected, changes=changes):
                return None
            created: Order | None = None
            if reason != Order.Reason.BUY:
                basis = _exit_basis(strategy, again=again)
                if basis.out or basis.held <= 0:
                    # The row lock the transition took serialises this check: the exit is already out.
                    transaction.set_rollback(True)
                    return None
                if basis.protective_id is not None:
                    created = _protective_claim(basis.protective_id, reason)
                order["quantity"], order["order_id"] = basis.held, basis.order_id
            if created is None:
                # A conflict raises out of this transaction and rolls it back whole: no savepoint.
                created = order_create(strategy=strategy, reason=reason, savepoint=False, **order)
            if held is not None and held.pending:
                emit_many(held.pending)
                held.pending = []
            return created
    except OrderConflict:
        return None
