"""E2 and E3, the exits: the SELL at sell time or the exit a STOP (or X5) asked for, and the
stop-loss. Each claims the exit (BOUGHT -> EXITING, won once) under the strategy's lock; a
stop-loss hands its accepted exit and the lock to a follow task, so its slot is free at once."""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any

from django.conf import settings
from django.utils import timezone

from algotrader import redis_keys
from algotrader.celery import app, task_send
from algotrader.queues import TaskName
from execution.models import Order
from execution.services.claims import (
    ACTIVE,
    ExitReason,
    Position,
    position_claim,
    strategy_about,
    strategy_emission,
    strategy_locked,
    strategy_read,
)
from execution.services.locks import ExecutionLock
from execution.services.outcomes import exit_claim, order_execute
from execution.services.placement import AcceptedHandOff
from execution.services.settlement import position_resume
from monitoring.events import Event
from monitoring.services import emit
from strategies import services as strategy_services
from strategies.models import Strategy
from strategies.stoploss_index import stoploss_disarm

logger = logging.getLogger(__name__)


def strategy_sell_execute(*, strategy_id: int, reason: str = ExitReason.SELL) -> Order | None:
    """E2: the SELL at sell time (claim BOUGHT -> EXITING(SELL)) or the exit a STOP asked
    for (already EXITING(STOP)). With no position (the BUY never filled) the strategy ends."""
    strategy = strategy_read(strategy_id)
    if strategy is None:
        return None
    emit(Event.E2_EXECUTE_SELL, strategy=strategy, payload={**strategy_about(strategy), "reason": reason})
    with strategy_locked(strategy, kind=str(reason), wait=True) as held:
        if not held:
            return None
        order = exit_claim(strategy, reason)
        if order is None:
            strategy.refresh_from_db()
            if strategy.position == Position.BUYING:
                # The BUY was interrupted: settle it first, then the exit can be claimed.
                position_resume(strategy, Order.Side.BUY, lock=held.lock)
                strategy.refresh_from_db()
                order = exit_claim(strategy, reason)
        if order is None:
            strategy.refresh_from_db()
            if strategy.position == Position.NONE and strategy.status in ACTIVE and reason == ExitReason.SELL:
                strategy_services.strategy_exit(
                    strategy_id=strategy.pk, reason=ExitReason.SELL, position=Position.NONE, at=timezone.now()
                )
                return None
            return position_resume(strategy, Order.Side.SELL, lock=held.lock)
        stoploss_disarm(strategy_id=strategy.pk, instrument=redis_keys.instrument(strategy.exchange, strategy.symbol))
        return order_execute(strategy, order, lock=held.lock)


def strategy_stoploss_execute(
    *, strategy_id: int, hand_off: bool = False, reason: str = ExitReason.STOPLOSS
) -> Order | None:
    """E3: claim BOUGHT -> EXITING(STOPLOSS) and place the exit; if a SELL (or STOP) claimed
    the exit already, nothing is placed here. ``hand_off`` (the task's way): once the broker accepts
    the exit, ``position_follow`` follows it on another worker, freeing this slot for the next stop.
    ``reason``: STOPLOSS, TRAIL (a stop the trail raised) or TARGET, the claim's and the order's."""
    reason = ExitReason(reason)
    strategy = strategy_read(strategy_id)
    if strategy is None:
        return None
    start = strategy_emission(Event.E3_EXECUTE_STOPLOSS, strategy)
    with strategy_locked(strategy, kind="STOPLOSS", wait=True, start=start) as held:
        if not held:
            return None
        order = position_claim(
            strategy,
            expected={"status__in": ACTIVE, "position": Position.BOUGHT},
            changes={"position": Position.EXITING, "exit_reason": reason},
            reason=Order.Reason(reason),
            held=held,
        )
        if order is None:
            # The exit is claimed already, so this records no E3. A stop-loss's own claim (a
            # redelivery after its worker died) is resumed here; another exit's is left to
            # its own task or to settlement, so this slot is not held for it.
            held.pending.clear()
            held.release_rate()
            logger.info("stop-loss places nothing: the exit is already claimed", extra={"strategy_id": strategy.pk})
            strategy.refresh_from_db()
            if strategy.exit_reason != reason:
                return None
            return position_resume(strategy, Order.Side.SELL, lock=held.lock)
        # No timer work before the order: the SELL's slot goes with S5 (``strategy_exit``),
        # and a SELL firing meanwhile finds the exit claimed.
        return order_execute(
            strategy,
            order,
            lock=held.lock,
            rate_taken=held.rate_taken,
            hand_off=follow_hand_off(strategy, held.lock) if hand_off else None,
        )


def follow_hand_off(strategy: Strategy, lock: ExecutionLock | None) -> AcceptedHandOff | None:
    """What ``order_place`` calls once the broker accepted the order: it sends the order on
    with ``lock``. None without a lock (an exit proceeding without it): nothing to hand
    over, the execution goes on itself."""
    return None if lock is None else partial(_follow_send, strategy, lock)


def _follow_send(
    strategy: Strategy, lock: ExecutionLock, order: Order, broker_order_id: str, request: dict[str, Any]
) -> bool:
    """Send the accepted order, with the strategy's lock, to a follow task; False (the
    caller goes on itself) if it could not be sent. Should this worker die before the
    task is sent, settlement finds the order live and its lock expired, looks it up by its
    tag and settles it (``recovery.orders_settle_interrupted``), as any interrupted order."""
    try:
        # The task and its sent event in one Redis pipeline (kombu's Producer.batch).
        with app.producer_or_acquire() as producer, producer.batch():
            task_send(
                TaskName.FOLLOW_ORDER,
                args=(order.pk, lock.token, broker_order_id, request),
                kwargs={"strategy_id": strategy.pk, "accepted_at": time.time()},
                producer=producer,
                expires=settings.STOPLOSS_EXPIRES_SECONDS,
            )
    except Exception:
        logger.warning("follow task not sent: followed here", extra={"order_id": order.pk}, exc_info=True)
        return False
    lock.hand_over()
    return True
