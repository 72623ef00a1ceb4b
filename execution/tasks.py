"""Order tasks: thin interfaces to the execution services. Routing is ``task_routes``'s
(stop-losses to their own queue); every task is acknowledged late and expires, and is
safe to run twice (the database claim lets one delivery act)."""

from typing import Any

from celery import shared_task
from django.conf import settings

from execution import services
from execution.services import recovery
from monitoring.logging import log_context
from strategies.buy_window import buy_window_seconds


@shared_task(acks_late=True, expires=buy_window_seconds())
def execute_buy_task(strategy_id: int) -> None:
    with log_context(strategy_id=strategy_id):
        services.strategy_buy_execute(strategy_id=strategy_id)


@shared_task(acks_late=True, expires=settings.SELL_EXPIRES_SECONDS)
def execute_sell_task(strategy_id: int, reason: str = "SELL") -> None:
    with log_context(strategy_id=strategy_id):
        services.strategy_sell_execute(strategy_id=strategy_id, reason=reason)


@shared_task(acks_late=True, expires=settings.STOPLOSS_EXPIRES_SECONDS)
def execute_stoploss_task(strategy_id: int) -> None:
    # The fill is followed by follow_order_task: this worker's slot is free for the next stop.
    with log_context(strategy_id=strategy_id):
        services.strategy_stoploss_execute(strategy_id=strategy_id, hand_off=True)


@shared_task(acks_late=True, expires=settings.STOPLOSS_EXPIRES_SECONDS)
def follow_order_task(
    order_id: int,
    lock_token: str,
    broker_order_id: str = "",
    request: dict[str, Any] | None = None,
    strategy_id: int | None = None,
    accepted_at: float | None = None,
) -> None:
    """On the orders queue. Lost or expired, settlement settles the order by its tag.
    ``strategy_id`` and ``accepted_at``: absent from a task sent before they existed."""
    with log_context(order_id=order_id):
        services.position_follow(
            order_id=order_id,
            lock_token=lock_token,
            broker_order_id=broker_order_id,
            request=request,
            strategy_id=strategy_id,
            accepted_at=accepted_at,
        )


@shared_task(acks_late=True, expires=settings.ORDER_SETTLE_SECONDS)
def settle_orders_task() -> None:
    recovery.orders_settle_interrupted()
