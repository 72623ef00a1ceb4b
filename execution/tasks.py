"""Order tasks: thin interfaces to the execution services. Names and routes are
``algotrader.queues``'s (stop-losses to their own queue); every task is acknowledged late and expires, and is
safe to run twice (the database claim lets one delivery act)."""

from decimal import Decimal
from typing import Any

from celery import shared_task
from django.conf import settings

from algotrader.queues import TaskName
from execution import services
from execution.recovery import settlement
from execution.services import losses, protective, updates
from monitoring.logging import log_context
from monitoring.services import strategy_tasks_register
from strategies.buy_window import buy_window_seconds
from strategies.models import Strategy


@shared_task(name=TaskName.EXECUTE_BUY.value, acks_late=True, expires=buy_window_seconds())
def execute_buy_task(strategy_id: int) -> None:
    # The fill is followed by follow_order_task: this worker's slot is free for the next BUY.
    with log_context(strategy_id=strategy_id):
        services.strategy_buy_execute(strategy_id=strategy_id, hand_off=True)


@shared_task(name=TaskName.EXECUTE_SELL.value, acks_late=True, expires=settings.SELL_EXPIRES_SECONDS)
def execute_sell_task(strategy_id: int, reason: str = "SELL") -> None:
    with log_context(strategy_id=strategy_id):
        services.strategy_sell_execute(strategy_id=strategy_id, reason=reason)


@shared_task(name=TaskName.EXECUTE_STOPLOSS.value, acks_late=True, expires=settings.STOPLOSS_EXPIRES_SECONDS)
def execute_stoploss_task(strategy_id: int, reason: str = "STOPLOSS") -> None:
    # The fill is followed by follow_order_task: this worker's slot is free for the next stop.
    # ``reason``: STOPLOSS, TRAIL or TARGET (the tick consumer's; absent from a task sent before it existed).
    with log_context(strategy_id=strategy_id):
        services.strategy_stoploss_execute(strategy_id=strategy_id, hand_off=True, reason=reason)


@shared_task(name=TaskName.FOLLOW_ORDER.value, acks_late=True, expires=settings.STOPLOSS_EXPIRES_SECONDS)
def follow_order_task(
    order_id: int,
    lock_token: str,
    broker_order_id: str = "",
    request: dict[str, Any] | None = None,
    strategy_id: int | None = None,
    accepted_at: float | None = None,
    poll: float | None = None,
    cancelled_at: float | None = None,
) -> None:
    """On the orders queue. Lost or expired, settlement settles the order by its tag.
    ``strategy_id`` and ``accepted_at``: absent from a task sent before they existed. One look
    at the order per run: not final, it sends itself again (``poll``, ``cancelled_at``: where
    the follow stands), so no worker thread waits for a fill."""
    with log_context(order_id=order_id):
        services.position_follow(
            order_id=order_id,
            lock_token=lock_token,
            broker_order_id=broker_order_id,
            request=request,
            strategy_id=strategy_id,
            accepted_at=accepted_at,
            resend=True,
            poll=poll,
            cancelled_at=cancelled_at,
        )


@shared_task(name=TaskName.ORDER_UPDATE.value, acks_late=True, expires=settings.ORDER_FOLLOW_SECONDS)
def order_update_task(account_id: int, payload: dict[str, Any]) -> None:
    """A Kite postback's final update, verified by ``brokers``: applied at most once to its order
    (a duplicate or late one changes nothing). Expired, the order's follow or settlement has it."""
    with log_context(broker_order_id=str(payload.get("order_id") or "")):
        updates.kite_order_update_apply(account_id=account_id, payload=payload)


@shared_task(name=TaskName.MOVE_PROTECTIVE_STOP.value, acks_late=True, expires=settings.SELL_EXPIRES_SECONDS)
def move_protective_stop_task(strategy_id: int, trigger_price: str) -> None:
    """The protective stop resting at the broker follows a moved stop (U5, a trailing stop)."""
    with log_context(strategy_id=strategy_id):
        protective.protective_stop_move(strategy_id=strategy_id, trigger_price=Decimal(trigger_price))


@shared_task(name=TaskName.SETTLE_ORDERS.value, acks_late=True, expires=settings.ORDER_SETTLE_SECONDS)
def settle_orders_task() -> None:
    settlement.orders_settle_interrupted()


@shared_task(name=TaskName.CHECK_LOSS_LIMITS.value, acks_late=True, expires=settings.LOSS_CHECK_SECONDS * 2)
def check_loss_limits_task(user_id: int) -> None:
    # Sent after an exit's fill; running it twice trips a limit once (one halt, one alert, one exit each).
    with log_context(user_id=user_id):
        losses.loss_limits_check(user_id=user_id)


@shared_task(name=TaskName.CHECK_LOSS_LIMITS_HOLDING.value, acks_late=True, expires=settings.LOSS_CHECK_SECONDS)
def check_loss_limits_holding_task() -> None:
    losses.loss_limits_check_holding()


def _strategy_with_owner(strategy_id: int) -> Strategy | None:
    return Strategy.objects.select_related("owner").filter(pk=strategy_id).first()


# A crash of these (their first argument is a strategy id) is a strategy crash alert.
strategy_tasks_register(
    names=(TaskName.EXECUTE_BUY, TaskName.EXECUTE_SELL, TaskName.EXECUTE_STOPLOSS), reader=_strategy_with_owner
)
