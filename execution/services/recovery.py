"""Settlement of interrupted intents: an order still live with nobody working on it (its
worker died between the commit of the intent and the end of the execution) is settled
from the database every ORDER_SETTLE_SECONDS: looked up by its tag and adopted, or, if
the broker never had it, failed; a lost exit is placed again under a new tag (the
position must not stay open), a lost BUY ends the strategy. The strategy's lock tells a
live worker's order (skipped) from an orphan."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from brokers.adapters.registry import adapter_for
from brokers.exceptions import BrokerError
from execution.models import Order
from execution.services import locks, positions  # positions as a module: it imports the tasks, which import this
from execution.services.orders import order_adopt, order_fail, order_lookup, order_replace, order_settle

logger = logging.getLogger(__name__)

SETTLE_BATCH = 100


def orders_settle_interrupted(*, older_than: float | None = None) -> int:
    """Settle live orders untouched for ``older_than`` seconds whose strategy no worker
    holds; returns how many reached a final status."""
    idle = settings.ORDER_SETTLE_AFTER_SECONDS if older_than is None else older_than
    cutoff = timezone.now() - timedelta(seconds=idle)
    candidates = list(
        Order.objects.filter(status__in=Order.LIVE, updated_at__lt=cutoff)
        .order_by("id")
        .values_list("id", "strategy_id")[:SETTLE_BATCH]
    )
    settled = 0
    for order_id, strategy_id in candidates:
        token = locks.lock_acquire(strategy_id=strategy_id)
        if token is None:
            continue  # a worker is executing this strategy: the order is its to finish
        with locks.lock_held(strategy_id=strategy_id, token=token):
            try:
                settled += order_settle_interrupted(order_id=order_id)
            except BrokerError as error:  # the broker is down: the next round tries again
                logger.warning(
                    "settling an interrupted order failed", extra={"order_id": order_id, "error": str(error)}
                )
    return settled


def order_settle_interrupted(*, order_id: int) -> bool:
    """Settle one orphaned live order (the caller holds the strategy's lock)."""
    order = Order.objects.select_related("strategy__owner", "strategy__broker_account").get(pk=order_id)
    if not order.is_live:
        return False
    strategy = order.strategy
    adapter = adapter_for(strategy.broker_account)
    if order.status != Order.Status.PLACED:
        found = order_lookup(order=order, adapter=adapter)
        if found is None:
            return False  # the broker could not say: next round
        if found:
            order_adopt(order, strategy, found[0].broker_order_id)
        elif order.side == Order.Side.SELL:
            replacement = order_replace(order, strategy, why="interrupted before the broker had it")
            if replacement.is_live:
                positions.order_execute(strategy, replacement)
            return True
        else:
            order_fail(order=order, strategy=strategy, why="BUY interrupted before the broker had it")
            positions.position_apply_outcome(strategy, order, adapter)
            return True
    seen = adapter.get_order(order.broker_order_id)
    if not seen.status.is_final:
        return False
    order_settle(order=order, strategy=strategy, seen=seen)
    positions.position_apply_outcome(strategy, order, adapter)
    return True
