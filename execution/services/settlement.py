"""Settling a position an execution left mid-way (the caller holds the strategy's lock): its live
order settled by its tag, an outcome that never reached it applied, a failed exit placed again,
and what surfaced duplicates filled squared off (EXCESS), so the strategy holds what the broker holds."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from brokers.models import BrokerAccount
from execution.models import Order
from execution.services.claims import (
    ACTIVE,
    Position,
    live_order,
    position_held_quantity,
    position_orders,
    position_target,
)
from execution.services.fills import order_follow
from execution.services.locks import ExecutionLock
from execution.services.orders import order_create
from execution.services.outcomes import account_status, order_execute, position_apply_outcome, position_exit_retry
from execution.services.placement import broker_adapter
from execution.services.reconcile import order_lookup, order_reconcile
from strategies.models import Strategy

logger = logging.getLogger(__name__)


def position_resume(strategy: Strategy, side: Order.Side, *, lock: ExecutionLock | None) -> Order | None:
    """Finish what an interrupted execution of ``side`` left (the caller holds the lock):
    a live order is settled by its tag and followed; a final one whose outcome never
    reached the position (the worker died between the two) is applied now."""
    order = live_order(strategy, side)
    if order is None:
        strategy.refresh_from_db()
        waiting = Position.BUYING if side == Order.Side.BUY else Position.EXITING
        if strategy.position != waiting or strategy.status not in ACTIVE:
            return None
        if side == Order.Side.SELL:
            return position_exit_retry(strategy, lock=lock)
        last = position_orders(strategy, side).order_by("-id").first()
        if last is not None:
            position_apply_outcome(strategy, last, lock=lock)
        return last
    with broker_adapter(strategy) as adapter:
        if order.status != Order.Status.PLACED:
            found = order_lookup(order=order, adapter=adapter)
            if not found or not order_reconcile(order=order, strategy=strategy, adapter=adapter, grace=0, lock=lock):
                logger.warning("live order not found by tag: left to recovery", extra={"order_id": order.pk})
                return order
        order = order_follow(order=order, strategy=strategy, adapter=adapter, lock=lock)
    position_apply_outcome(strategy, order, lock=lock)
    return order


def position_square_excess(strategy: Strategy, *, lock: ExecutionLock | None) -> Order | None:
    """Square off what surfaced duplicates filled beyond what the strategy should hold (the
    caller holds the lock): an EXCESS SELL of the surplus, or an EXCESS BUY of what was sold
    twice. Left to the exit while BUYING or EXITING, and while any order is live, and
    held back while the account cannot trade (it would only be refused)."""
    if account_status(strategy) != BrokerAccount.Status.ACTIVE:
        return None
    with transaction.atomic():
        locked = Strategy.objects.select_for_update().filter(pk=strategy.pk).first()
        if locked is None or locked.position in (Position.BUYING, Position.EXITING):
            return None
        if Order.objects.filter(strategy=locked, status__in=Order.LIVE).exists():
            return None
        excess = position_held_quantity(locked) - position_target(locked)
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
    return order_execute(strategy, order, lock=lock)
