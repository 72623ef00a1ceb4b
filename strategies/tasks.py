"""Scheduler tasks (T1, T2): a slot sent by beat at its instant, and the sweeper, each
fan out to the strategies due; both are thin interfaces to ``strategies.scheduling``.
Routed by ``algotrader.queues`` to the ``scheduler`` queue and its worker. And, on the default
queue, the record of a raised trailing stop (P4), sent by the tick consumer, and the morning
readiness check's pass, sent by beat every minute."""

from datetime import datetime
from decimal import Decimal
from typing import Any

from celery import Task, shared_task
from celery.signals import task_revoked

from algotrader.queues import TaskName
from strategies import readiness, scheduling, services

ORDER_TASK_SIDES: dict[str, scheduling.Side] = {
    TaskName.EXECUTE_BUY: scheduling.Side.BUY,
    TaskName.EXECUTE_SELL: scheduling.Side.SELL,
}


@shared_task(name=TaskName.FIRE_SLOT.value, acks_late=True)
def fire_slot_task(slot: str) -> None:
    scheduling.fire_due(slot=datetime.fromisoformat(slot), source="slot")


@shared_task(name=TaskName.SWEEP_DUE.value, acks_late=True)
def sweep_due_task() -> None:
    scheduling.sweep()


@shared_task(name=TaskName.READINESS_CHECK.value, acks_late=True, expires=60, ignore_result=True)
def readiness_check_task() -> int:
    return readiness.readiness_check_due()


# A later raise supersedes it: one left queued this long is not worth recording.
RECORD_TRAIL_EXPIRES_SECONDS = 600


@shared_task(name=TaskName.RECORD_TRAIL.value, acks_late=True, expires=RECORD_TRAIL_EXPIRES_SECONDS)
def record_trail_task(strategy_id: int, high_price: str, stop_price: str, move_protective: bool = True) -> None:
    services.strategy_trail_record(
        strategy_id=strategy_id,
        high_price=Decimal(high_price),
        stop_price=Decimal(stop_price),
        move_protective=move_protective,
    )


@task_revoked.connect
def alert_expired_order_task(
    sender: Task[Any, Any] | None = None, request: Any = None, expired: bool = False, **_: Any
) -> None:
    """A BUY past its grace window (or a SELL past its expiry) that the worker dropped
    unrun: the late policy's skip must not be silent."""
    side = ORDER_TASK_SIDES.get(getattr(sender, "name", ""))
    if not expired or side is None or request is None or not request.args:
        return
    scheduling.order_task_expired(strategy_id=int(request.args[0]), side=side)
