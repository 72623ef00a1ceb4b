"""Order updates the broker pushes (Kite's ticker order messages and its postbacks): each one handed
to its order's follow, which then needs no poll, and applied here to an order nobody follows, through
the path a poll's answer takes. Delivered twice, late or out of order, an update changes nothing wrong."""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any

from brokers.adapters.base import BrokerOrder
from brokers.adapters.kite import kite_order
from execution.models import Order
from execution.services import locks
from execution.services.fills import order_settle
from execution.services.inbox import order_update_publish
from execution.services.locks import ExecutionLock
from execution.services.orders import order_adopt
from execution.services.outcomes import position_apply_latest_outcome
from execution.services.updates_protective import protective_update_apply
from monitoring.logging import log_context
from strategies.models import Strategy

logger = logging.getLogger(__name__)


class Applied(StrEnum):
    """What ``order_update_apply`` did with an update."""

    HANDED = "handed"  # to the follow that holds the strategy's lock (it pops it)
    SETTLED = "settled"  # nobody followed: the order settled here (and its position moved)
    IGNORED = "ignored"  # not final, not ours, or the order was final already


def order_update_apply(*, account_id: int, seen: BrokerOrder) -> Applied:
    """Hand ``seen`` to its order's follow (a short-lived Redis list it pops instead of asking the
    broker), and if no worker holds the strategy's lock (nobody follows: its follow gave up, or
    died), settle the order here under that lock. Only a final update settles, and only a live
    order: a final order never moves again, so a duplicate, a late OPEN after COMPLETE or a
    second delivery (ticker and postback both) changes nothing."""
    if not seen.broker_order_id:
        return Applied.IGNORED
    order_update_publish(account_id=account_id, seen=seen)
    if not seen.status.is_final:
        return Applied.HANDED  # a live order's state moves nothing here: only its follow reads it
    order = _order_of(account_id, seen)
    if order is None or not order.is_live:
        return Applied.IGNORED
    lock = locks.lock_acquire(strategy_id=order.strategy_id)
    if lock is None:
        return Applied.HANDED  # its follow (or placement) holds the lock and reads the list
    with lock, log_context(strategy_id=order.strategy_id, order_id=order.pk):
        order.refresh_from_db()
        if not order.is_live:
            return Applied.IGNORED  # its follow settled it just before letting go of the lock
        strategy = order.strategy
        if order.status != Order.Status.PLACED and not order_adopt(order, strategy, seen.broker_order_id):
            return Applied.IGNORED
        logger.info("order settled from a pushed update", extra={"status": str(seen.status)})
        if order.protective:
            protective_order_final(order=order, strategy=strategy, seen=seen, lock=lock)
        else:
            order_final_apply(order=order, strategy=strategy, seen=seen, lock=lock)
    return Applied.SETTLED


def kite_order_update_apply(*, account_id: int, payload: dict[str, Any]) -> Applied:
    """A Kite order update (verified by its checksum already) in Kite's order-book shape."""
    try:
        seen = kite_order(payload)
    except (ValueError, TypeError, ArithmeticError):
        logger.warning("unreadable kite order update dropped", extra={"broker_order_id": payload.get("order_id")})
        return Applied.IGNORED
    return order_update_apply(account_id=account_id, seen=seen)


def order_final_apply(*, order: Order, strategy: Strategy, seen: BrokerOrder, lock: ExecutionLock | None) -> None:
    """A live order's final state recorded and carried to its position, as a follow's last poll
    does (``follow._follow_held``): the caller holds the strategy's lock."""
    order_settle(order=order, strategy=strategy, seen=seen, via="order_update")
    position_apply_latest_outcome(strategy, order, lock=lock)


def protective_order_final(*, order: Order, strategy: Strategy, seen: BrokerOrder, lock: ExecutionLock | None) -> None:
    """A resting protective stop's final update (its trigger filled, or it was cancelled): the
    protective stop's own path, which claims the exit as the stop-loss's when it filled."""
    protective_update_apply(order=order, seen=seen, lock=lock)


def _order_of(account_id: int, seen: BrokerOrder) -> Order | None:
    """Our order the update is about: by its broker id, or, while its acceptance is not recorded
    yet (the update outran the placing worker, or that worker died), by its tag."""
    orders = Order.objects.select_related("strategy__owner", "strategy__broker_account").filter(account_id=account_id)
    order = orders.filter(broker_order_id=seen.broker_order_id).first()
    if order is None and seen.tag:
        order = orders.filter(tag=seen.tag, status__in=(Order.Status.PENDING, Order.Status.UNKNOWN)).first()
    return order
