"""Order tasks on the ``orders`` queue: thin interfaces to execution services."""

from celery import shared_task

from algotrader.queues import CeleryQueue
from execution import services


@shared_task(queue=CeleryQueue.ORDERS.value, acks_late=True)
def execute_buy_task(strategy_id: int) -> None:
    services.strategy_buy_execute(strategy_id=strategy_id)


@shared_task(queue=CeleryQueue.ORDERS.value, acks_late=True)
def execute_sell_task(strategy_id: int, reason: str = "SELL") -> None:
    services.strategy_sell_execute(strategy_id=strategy_id, reason=reason)
