"""Settlement from the database, every ORDER_SETTLE_SECONDS and in every recovery, of whatever no worker is
finishing (orphaned orders, stalled positions, lost orders, consumed stops, lost tasks): the one path that
re-runs lost order work. The strategy's lock tells a live worker's order (skipped) from an orphan."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from brokers.adapters.base import BrokerAdapter, BrokerOrder
from brokers.exceptions import BrokerError
from execution.models import Order
from execution.recovery.runtime import stops_fired, stops_fired_before, targets_fired
from execution.services import entries, exits, locks, outcomes, safety, settlement
from execution.services.fills import order_settle
from execution.services.orders import about, order_adopt, order_fail, order_replace
from execution.services.placement import broker_adapter
from execution.services.reconcile import order_lookup, order_surfaced_check
from execution.services.updates_protective import RESTING_TYPES, protectives_poll
from monitoring.services import alert_raise
from strategies.buy_window import buy_window_earliest_fire_at, buy_window_open
from strategies.models import Strategy
from strategies.stoploss_index import stoploss_arm

logger = logging.getLogger(__name__)

SETTLE_BATCH = 100


def orders_settle_interrupted(*, older_than: float | None = None) -> int:
    """Settle live orders untouched for ``older_than`` seconds whose strategy no worker
    holds; returns how many reached a final status."""
    idle = settings.ORDER_SETTLE_AFTER_SECONDS if older_than is None else older_than
    now = timezone.now()
    cutoff = now - timedelta(seconds=idle)
    exit_cutoff = now - timedelta(seconds=min(idle, settings.EXIT_CONFIRM_AFTER_SECONDS))
    candidates = list(
        Order.objects.filter(
            Q(updated_at__lt=cutoff) | Q(side=Order.Side.SELL, updated_at__lt=exit_cutoff), status__in=Order.LIVE
        )
        # A resting protective stop is polled on its own budget (``protectives_poll``).
        .exclude(protective=True, status=Order.Status.PLACED, order_type__in=RESTING_TYPES)
        .order_by("id")
        .values_list("id", "strategy_id", "side", "updated_at")[:SETTLE_BATCH]
    )
    settled = 0
    for order_id, strategy_id, side, updated_at in candidates:
        lock = locks.lock_acquire(strategy_id=strategy_id) if updated_at < cutoff else None
        if lock is None:  # a worker is executing this strategy: the order is its to finish,
            if side == Order.Side.SELL:  # unless it is an exit it stopped following
                settled += _exit_confirm_unfollowed(order_id)
            continue
        with lock:
            try:
                settled += order_settle_interrupted(order_id=order_id, lock=lock)
            except BrokerError as error:  # the broker is down: the next round tries again
                logger.warning(
                    "settling an interrupted order failed", extra={"order_id": order_id, "error": str(error)}
                )
    return (
        settled
        + _positions_settle_interrupted(cutoff)
        + _lost_orders_watch()
        + protectives_poll()
        + _stops_rearm(cutoff)
        + order_work_rescue()
    )


def _exit_confirm_unfollowed(order_id: int) -> int:
    """A live exit whose lock has gone unrenewed as long: final at the broker, its follower died
    (or never started), so it is confirmed now rather than once the lock expires. The lock is
    seized first, so a follower that turns up late finds the work done; nothing is placed here."""
    order = (
        Order.objects.select_related("strategy__owner", "strategy__broker_account")
        .filter(pk=order_id, side=Order.Side.SELL, status__in=Order.LIVE)
        .first()
    )
    if order is None:
        return 0
    idle = locks.lock_idle_seconds(strategy_id=order.strategy_id)
    if idle is None or idle < settings.EXIT_CONFIRM_AFTER_SECONDS:
        return 0  # free (settled the usual way once old enough), or renewed lately: alive, following
    strategy = order.strategy
    try:
        with broker_adapter(strategy) as adapter:
            seen = _exit_final_at_broker(order, adapter)
            if seen is None:
                return 0
            lock = locks.lock_seize(strategy_id=strategy.pk)
            if lock is None:
                return 0  # released meanwhile: the next round settles it the usual way
            with lock:
                order.refresh_from_db()
                if not order.is_live:
                    return 0
                logger.warning("exit final at the broker but unconfirmed: confirmed now", extra={"order_id": order_id})
                if order.status != Order.Status.PLACED:
                    order_adopt(order, strategy, seen.broker_order_id)
                order_settle(order=order, strategy=strategy, seen=seen)
                outcomes.position_apply_outcome(strategy, order, lock=lock)
    except BrokerError as error:
        logger.warning("checking an unfollowed exit failed", extra={"order_id": order_id, "error": str(error)})
        return 0
    alert_raise(
        kind="exit_confirmed_late",
        key=f"order:{order.pk}",
        severity="warning",
        strategy=strategy,
        order=order,
        message=f"{order.reason} exit {order.tag} was {seen.status.lower()} at the broker before we confirmed it: "
        "its follower had not confirmed it, and settlement did",
        payload=about(order, strategy),
    )
    return 1


def _exit_final_at_broker(order: Order, adapter: BrokerAdapter) -> BrokerOrder | None:
    """The broker's final word on a live exit (looked up by its tag if it has no broker
    id on record yet), or None while it is not final or not found."""
    broker_order_id = order.broker_order_id
    if order.status != Order.Status.PLACED:
        found = order_lookup(order=order, adapter=adapter)
        if not found:
            return None
        broker_order_id = found[0].broker_order_id
    seen = adapter.get_order(broker_order_id)
    return seen if seen.status.is_final else None


def _positions_settle_interrupted(cutoff: datetime) -> int:
    """Positions left BUYING or EXITING although their order is final: the worker died
    between recording the broker's answer and moving the position."""
    waiting = Strategy.objects.filter(
        status__in=(Strategy.Status.RUNNING, Strategy.Status.STOPPED),
        position__in=(Strategy.Position.BUYING, Strategy.Position.EXITING),
        updated_at__lt=cutoff,
    ).exclude(orders__status__in=Order.LIVE)
    settled = 0
    for strategy in waiting.select_related("owner", "broker_account")[:SETTLE_BATCH]:
        lock = locks.lock_acquire(strategy_id=strategy.pk)
        if lock is None:
            continue
        with lock:
            side = Order.Side.BUY if strategy.position == Strategy.Position.BUYING else Order.Side.SELL
            settled += settlement.position_resume(strategy, side, lock=lock) is not None
    return settled


def _lost_orders_watch() -> int:
    """Lost orders (FAILED, not found by their tag) looked up again until the trading day
    ends; one that surfaced is resolved (cancelled if open, its fill recorded), and its
    strategy squared back to what it should hold. Returns how many were resolved."""
    now = timezone.now()
    watched = list(
        Order.objects.filter(watch_until__gt=now, status=Order.Status.FAILED)
        .order_by("id")
        .values_list("id", "strategy_id")[:SETTLE_BATCH]
    )
    # Strategies whose surfaced orders are resolved and may still hold too much or too little.
    to_square = set(
        Order.objects.filter(surfaced_at__gt=now - timedelta(days=1), watch_until__isnull=True).values_list(
            "strategy_id", flat=True
        )
    )
    resolved = 0
    for order_id, strategy_id in watched:
        lock = locks.lock_acquire(strategy_id=strategy_id)
        if lock is None:
            continue
        with lock:
            order = Order.objects.select_related("strategy__owner", "strategy__broker_account").get(pk=order_id)
            with broker_adapter(order.strategy) as adapter:
                if order_surfaced_check(order=order, strategy=order.strategy, adapter=adapter):
                    resolved += 1
                    to_square.add(strategy_id)
    for strategy_id in sorted(to_square):
        lock = locks.lock_acquire(strategy_id=strategy_id)
        if lock is None:
            continue
        with lock:
            strategy = Strategy.objects.select_related("owner", "broker_account").get(pk=strategy_id)
            try:
                settlement.position_square_excess(strategy, lock=lock)
            except BrokerError as error:
                logger.warning("squaring off failed", extra={"strategy_id": strategy_id, "error": str(error)})
    return resolved


def _stops_rearm(cutoff: datetime) -> int:
    """Positions held by running strategies whose stop is not armed and has not fired (a
    rebuild or a move lost to a crash): armed again. A stop that fired stays fired; its
    lost task is ``_stoplosses_rescue``'s."""
    held = list(
        Strategy.objects.filter(
            status=Strategy.Status.RUNNING,
            position=Strategy.Position.BOUGHT,
            stop_trigger_price__isnull=False,
            updated_at__lt=cutoff,
        ).values_list("id", "exchange", "symbol", "stop_trigger_price")
    )
    fired = stops_fired(strategy_id for strategy_id, *_ in held)
    held = [row for row in held if row[0] not in fired]
    if not held:
        return 0
    pipe = get_redis().pipeline(transaction=False)
    for strategy_id, exchange, symbol, _ in held:
        pipe.zscore(redis_keys.stop_losses(redis_keys.instrument(exchange, symbol)), str(strategy_id))
    armed = pipe.execute()
    rearmed = 0
    for (strategy_id, exchange, symbol, trigger), score in zip(held, armed, strict=True):
        if score is None and trigger is not None:
            stoploss_arm(
                strategy_id=strategy_id, instrument=redis_keys.instrument(exchange, symbol), trigger_price=trigger
            )
            logger.warning("stop re-armed for a held position", extra={"strategy_id": strategy_id})
            rearmed += 1
    return rearmed


def order_work_rescue() -> int:
    """Fired BUYs, SELLs and stops (nothing fires them again) whose task was lost before claiming,
    to a flush or to a killed worker whose redelivery waits out the visibility timeout: run here
    after LOST_TASK_AFTER_SECONDS, a BUY only within its grace. The claims let one through should
    the task turn up after all. Returns how many were run."""
    return _stoplosses_rescue() + _sells_rescue() + _buys_rescue()


def _lost_before() -> datetime:
    return timezone.now() - timedelta(seconds=settings.LOST_TASK_AFTER_SECONDS)


def _stoplosses_rescue() -> int:
    lost = stops_fired_before(_lost_before(), limit=SETTLE_BATCH)
    targets = targets_fired(lost)
    rescued = 0
    for strategy_id in lost:
        logger.warning("running a stop-loss whose task was lost", extra={"strategy_id": strategy_id})
        reason = Strategy.ExitReason.TARGET if strategy_id in targets else Strategy.ExitReason.STOPLOSS
        try:
            rescued += exits.strategy_stoploss_execute(strategy_id=strategy_id, reason=reason) is not None
        except BrokerError as error:  # the next round tries again
            logger.warning("running a lost stop-loss failed", extra={"strategy_id": strategy_id, "error": str(error)})
    return rescued


def _sells_rescue() -> int:
    lost = list(
        Strategy.objects.filter(
            status=Strategy.Status.RUNNING, position=Strategy.Position.BOUGHT, sell_fired_at__lt=_lost_before()
        ).values_list("id", flat=True)[:SETTLE_BATCH]
    )
    for strategy_id in lost:
        logger.warning("running a SELL whose task was lost", extra={"strategy_id": strategy_id})
        exits.strategy_sell_execute(strategy_id=strategy_id, reason=Strategy.ExitReason.SELL)
    return len(lost)


def _buys_rescue() -> int:
    """BUYs fired (T1 recorded) whose task died before claiming, so no order exists. Still
    within their grace, they are run here; the claim (RUNNING & NONE -> BUYING) and the
    one-live-BUY constraint let one through."""
    now = timezone.now()
    lost = list(
        Strategy.objects.filter(
            status=Strategy.Status.RUNNING,
            position=Strategy.Position.NONE,
            buy_fired_at__lt=_lost_before(),
            buy_fire_at__gte=buy_window_earliest_fire_at(now),
        )
        .exclude(orders__side=Order.Side.BUY)
        .values_list("id", "broker_account_id")[:SETTLE_BATCH]
    )
    rescued = 0
    for strategy_id, account_id in lost:
        if safety.halts_in_force().filter(Q(account__isnull=True) | Q(account_id=account_id)).exists():
            continue  # refused anyway, and alerted by the BUY that met the halt
        logger.warning("running a BUY whose task was lost", extra={"strategy_id": strategy_id})
        try:
            rescued += entries.strategy_buy_execute(strategy_id=strategy_id) is not None
        except BrokerError as error:  # the next round tries again, while the BUY is still valid
            logger.warning("running a lost BUY failed", extra={"strategy_id": strategy_id, "error": str(error)})
    return rescued


def _buy_still_valid(order: Order) -> bool:
    return (
        order.reason == Order.Reason.BUY
        and order.valid_until is not None
        and buy_window_open(valid_until=order.valid_until)
    )


def order_settle_interrupted(*, order_id: int, lock: locks.ExecutionLock) -> bool:
    """Settle one orphaned live order (the caller holds the strategy's lock)."""
    order = Order.objects.select_related("strategy__owner", "strategy__broker_account").get(pk=order_id)
    if not order.is_live:
        return False
    strategy = order.strategy
    with broker_adapter(strategy) as adapter:
        if order.status != Order.Status.PLACED:
            found = order_lookup(order=order, adapter=adapter)
            if found is None:
                return False  # the broker could not say: next round
            if found:
                order_adopt(order, strategy, found[0].broker_order_id)
        if order.status == Order.Status.PLACED:
            seen = adapter.get_order(order.broker_order_id)
            if not seen.status.is_final:
                return False
            order_settle(order=order, strategy=strategy, seen=seen)
    if order.is_live and (order.side == Order.Side.SELL or _buy_still_valid(order)):
        # A crash between the intent and the POST loses no order (E4 with a new tag, as for
        # an ambiguous outcome): an exit always, a BUY while its moment lasts. The lost tag
        # stays watched, so a request still on its way is squared off if it ever surfaces.
        replacement = order_replace(order, strategy, why="interrupted before the broker had it")
        if replacement.is_live:
            outcomes.order_execute(strategy, replacement, lock=lock)
        return True
    if order.is_live:
        order_fail(order=order, strategy=strategy, why="BUY interrupted before the broker had it, past its valid time")
    outcomes.position_apply_outcome(strategy, order, lock=lock)
    return True
