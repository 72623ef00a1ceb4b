"""Reconciling by tag: the broker's orders under an order's tag settle a placement that had no
answer (adopted, or not found), and find a lost order that surfaced later (cancelled if open,
its fill recorded for ``settlement.position_square_excess``)."""

from __future__ import annotations

import logging
import time

from django.utils import timezone

from brokers.adapters.base import BrokerAdapter, BrokerOrder
from brokers.exceptions import BrokerError
from execution.models import Order
from execution.services.fills import order_cancel_rest, order_fill_changes
from execution.services.locks import ExecutionLock
from execution.services.orders import about, error_text, order_adopt, order_exchange_log, order_watch_record
from monitoring.services import alert_raise, error_log
from strategies.models import Strategy

logger = logging.getLogger(__name__)

Status = Order.Status

_RECONCILE_POLL = 0.25


def order_lookup(*, order: Order, adapter: BrokerAdapter) -> list[BrokerOrder] | None:
    """The broker's orders carrying this order's tag; None if the broker could not say."""
    assert order.tag
    try:
        return adapter.orders_by_tag(order.tag)
    except BrokerError as error:
        logger.warning("order lookup by tag failed", extra={"order_id": order.pk, "error": error_text(error)})
        error_log(source="broker", error=error, order=order, message="Order lookup by tag failed")
        return None


def order_reconcile(
    *, order: Order, strategy: Strategy, adapter: BrokerAdapter, grace: float, lock: ExecutionLock | None
) -> bool:
    """Look an UNKNOWN (or interrupted PENDING) order up by its tag at once and again until
    ``grace`` has passed: True once found and adopted (PLACED with the broker's id)."""
    deadline = time.monotonic() + grace
    while True:
        if lock is not None:
            lock.keepalive()
        found = order_lookup(order=order, adapter=adapter)
        if found:
            if len(found) > 1:  # a broker-side duplicate: adopt one, an operator must see the other
                alert_raise(
                    kind="duplicate_tag",
                    key=f"order:{order.pk}",
                    strategy=strategy,
                    order=order,
                    message=f"{len(found)} orders at the broker carry tag {order.tag}",
                    payload=about(order, strategy),
                )
            order_adopt(order, strategy, found[0].broker_order_id)
            return order.status == Status.PLACED or order.status in Order.FINAL
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(_RECONCILE_POLL, remaining))


def order_surfaced_check(*, order: Order, strategy: Strategy, adapter: BrokerAdapter) -> bool:
    """Look a watched lost order up again; True once it is resolved. Found at last, it is
    recorded (surfaced, L4 once), cancelled while still open, and once final at the broker
    what it filled is recorded and the watch ends. The caller holds the strategy's lock."""
    seen: BrokerOrder | None
    if not order.broker_order_id:
        found = order_lookup(order=order, adapter=adapter)
        if not found:
            return False  # not there (yet), or the broker could not say: next round
        seen = found[0]
        if not order_watch_record(order, broker_order_id=seen.broker_order_id, surfaced_at=timezone.now()):
            return False
        order_exchange_log(order, strategy, {"orders_by_tag": order.tag}, {"broker_order_id": seen.broker_order_id})
        alert_raise(
            kind="order_surfaced",
            key=f"order:{order.pk}",
            strategy=strategy,
            order=order,
            message=(
                f"{order.reason} order {order.tag}, given up as lost, reached the broker after all: "
                "it is cancelled if still open, and anything it filled is squared off"
            ),
            payload={**about(order, strategy), "broker_order_id": seen.broker_order_id},
        )
    else:
        seen = _poll(order, strategy, adapter)
    if seen is not None and not seen.status.is_final:
        order_cancel_rest(order, strategy, adapter)
        seen = _poll(order, strategy, adapter)
    if seen is None or not seen.status.is_final:
        return False
    order_exchange_log(
        order,
        strategy,
        {"get_order": order.broker_order_id},
        {"status": seen.raw_status or str(seen.status), "filled_quantity": seen.filled_quantity},
    )
    return order_watch_record(order, watch_until=None, **order_fill_changes(order, seen))


def _poll(order: Order, strategy: Strategy, adapter: BrokerAdapter) -> BrokerOrder | None:
    try:
        return adapter.get_order(order.broker_order_id)
    except BrokerError as error:
        logger.warning("order poll failed", extra={"order_id": order.pk, "error": error_text(error)})
        return None
