"""The taking half of the stop-loss's hand-off: ``follow_order_task`` takes the strategy's lock
over from the stop-loss that sent it (``exits``) and finishes the execution as it would have."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from execution.models import Order
from execution.services import locks
from execution.services.claims import Held, position_orders, strategy_locked
from execution.services.fills import order_follow
from execution.services.locks import ExecutionLock
from execution.services.orders import broker_outage_resolve, order_accepted
from execution.services.outcomes import position_apply_outcome
from execution.services.placement import broker_adapter
from monitoring.logging import log_context
from strategies.models import Strategy

logger = logging.getLogger(__name__)


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
    """Finish an execution handed over once the broker accepted its order: the acceptance
    recorded, the order followed, the position moved. Safe to run twice or after settlement:
    an adopted or final order is not recorded again, and only the position's latest order of
    its side moves it. ``strategy_id`` lets the lock be taken over before the order is read."""
    taken = None if strategy_id is None else locks.lock_take_over(strategy_id=strategy_id, token=lock_token)
    if taken is not None:
        with taken:
            order = _order_read(order_id)
            if order is None or order.strategy_id != strategy_id:
                return None
            with log_context(strategy_id=strategy_id, order_id=order.pk):
                return _follow_held(order, order.strategy, taken, broker_order_id, request, accepted_at)
    order = _order_read(order_id)
    if order is None:
        return None
    strategy = order.strategy
    with log_context(strategy_id=strategy.pk, order_id=order.pk), _taken_over(strategy, lock_token) as held:
        if not held:
            return None
        order.refresh_from_db()
        return _follow_held(order, strategy, held.lock, broker_order_id, request, accepted_at)


def _follow_held(
    order: Order,
    strategy: Strategy,
    lock: ExecutionLock | None,
    broker_order_id: str,
    request: dict[str, Any] | None,
    accepted_at: float | None,
) -> Order | None:
    """``position_follow`` with the lock held and ``order`` read under it."""
    if broker_order_id and order.status in (Order.Status.PENDING, Order.Status.UNKNOWN):
        order_accepted(order=order, strategy=strategy, broker_order_id=broker_order_id, request=request or {})
    if order.status == Order.Status.PLACED:
        with broker_adapter(strategy) as adapter:
            broker_outage_resolve(strategy=strategy)
            order = order_follow(order=order, strategy=strategy, adapter=adapter, lock=lock, accepted_at=accepted_at)
    elif order.is_live:
        return order  # not placed (yet): only a lookup by its tag can settle it, settlement's
    latest = position_orders(strategy, Order.Side(order.side)).order_by("-id").values_list("id", flat=True)
    if latest.first() != order.pk:
        return order  # the position has moved on past this order (settled and replaced)
    position_apply_outcome(strategy, order, lock=lock)
    return order


@contextmanager
def _taken_over(strategy: Strategy, token: str) -> Iterator[Held]:
    """The handed-over lock, renewed; if another worker took it meanwhile (the follow task
    waited out its life), the lock as an exit takes it: waiting for that holder."""
    taken = locks.lock_take_over(strategy_id=strategy.pk, token=token)
    if taken is not None:
        with taken:
            yield Held(True, taken)
        return
    with strategy_locked(strategy, kind="FOLLOW", wait=True) as held:
        yield held
