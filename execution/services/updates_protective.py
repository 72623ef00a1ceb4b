"""What the broker says about a protective order reaching its position: the one idempotent entry
for settlement's poll and for order updates from the broker's stream (``protective_update_apply``).
Filled by its trigger while the position is BOUGHT, the exit is the stop-loss's: EXITING(STOPLOSS)
claimed, the tick stop disarmed, the position closed (E5, P3, S5 STOPLOSS with L1)."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from algotrader import redis_keys
from brokers.adapters.base import BrokerOrder, BrokerOrderStatus
from brokers.exceptions import BrokerError
from execution.models import Order
from execution.services import locks
from execution.services.claims import Position, Status
from execution.services.locks import ExecutionLock
from execution.services.outcomes import order_execute, position_apply_outcome
from execution.services.placement import broker_adapter
from execution.services.protective import protective_missing_alert, protective_settle
from strategies import services as strategy_services
from strategies.models import Strategy
from strategies.stoploss_index import stoploss_disarm

logger = logging.getLogger(__name__)

POLL_BATCH = 100
# A protective order still resting (not converted into an exit): polled on its own budget.
RESTING_TYPES = ("SL-M", "SL")


def protective_update_apply(*, order: Order, seen: BrokerOrder, lock: ExecutionLock | None) -> bool:
    """Apply the broker's view ``seen`` of a live protective ``order`` (the caller holds the
    strategy's lock). Final: recorded and its outcome applied; filled while the position is
    BOUGHT, the exit is claimed as the stop-loss's first. True if it moved anything; a
    repeated or stale update (the order already final) does nothing."""
    order.refresh_from_db()
    if not order.protective or not order.is_live or not seen.status.is_final:
        return False
    strategy = Strategy.objects.select_related("owner", "broker_account").get(pk=order.strategy_id)
    if seen.filled_quantity > 0 or seen.status is BrokerOrderStatus.COMPLETE:
        # The broker's trigger sold the position: the stop-loss's exit, claimed as it would claim it.
        strategy_services.strategy_transition(
            strategy_id=strategy.pk,
            expected={"status__in": (Status.RUNNING, Status.STOPPED), "position": Position.BOUGHT},
            changes={"position": Position.EXITING, "exit_reason": Strategy.ExitReason.STOPLOSS},
        )
        stoploss_disarm(strategy_id=strategy.pk, instrument=redis_keys.instrument(strategy.exchange, strategy.symbol))
        strategy.refresh_from_db()
    if not protective_settle(order=order, strategy=strategy, seen=seen):
        return False
    if strategy.position == Position.BOUGHT and order.filled_quantity == 0:
        # Cancelled (or rejected) at the broker while the position is held, not by an exit of
        # ours: the position stays, guarded by the app's own stop-loss; the user is told.
        protective_missing_alert(order=order, strategy=strategy, why=order.status.lower())
        return True
    position_apply_outcome(strategy, order, lock=lock)
    return True


def protectives_poll() -> int:
    """Settlement's look at live protective orders, each at most every PROTECTIVE_POLL_SECONDS (the
    broker's rate budget): one its trigger filled closes the position; one an exit claimed but
    could not convert (the broker did not answer) is converted again. Returns how many moved."""
    due = timezone.now() - timedelta(seconds=settings.PROTECTIVE_POLL_SECONDS)
    candidates = list(
        Order.objects.filter(protective=True, status=Order.Status.PLACED, order_type__in=RESTING_TYPES)
        .filter(updated_at__lt=due)
        .order_by("updated_at")
        .values_list("id", "strategy_id")[:POLL_BATCH]
    )
    moved = 0
    for order_id, strategy_id in candidates:
        lock = locks.lock_acquire(strategy_id=strategy_id)
        if lock is None:
            continue  # a worker is executing this strategy: the order is its to handle
        with lock:
            try:
                moved += _poll_one(order_id, lock)
            except BrokerError as error:  # the broker is down: the next round looks again
                logger.warning("protective stop poll failed", extra={"order_id": order_id, "error": str(error)})
    return moved


def _poll_one(order_id: int, lock: ExecutionLock) -> bool:
    order = Order.objects.select_related("strategy__owner", "strategy__broker_account").get(pk=order_id)
    if order.status != Order.Status.PLACED:
        return False
    strategy = order.strategy
    if strategy.position == Position.EXITING:
        # An exit claimed it and its conversion was left unfinished: finished here.
        order_execute(strategy, order, lock=lock)
        return True
    with broker_adapter(strategy) as adapter:
        seen = adapter.get_order(order.broker_order_id)
    if protective_update_apply(order=order, seen=seen, lock=lock):
        return True
    Order.objects.filter(pk=order.pk, status=Order.Status.PLACED).update(updated_at=timezone.now())
    return False
