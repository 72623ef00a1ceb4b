"""Protection of accounts from the engine itself: the per-account order rate limit
(Redis, shared by every worker, part of it reserved for stop-losses), the entry halt
(an operator's kill switch, or X5's per account) that refuses new BUYs while exits run,
and X5 SAFETY_ABORT when an account's orders keep failing at the broker."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from algotrader import redis_keys
from algotrader.celery import task_send
from algotrader.queues import TaskName
from algotrader.redis_client import get_redis, redis_script
from brokers.kite_limits import KITE_LIMITS
from brokers.models import BrokerAccount
from execution.models import EntryHalt, Order
from execution.services import locks
from monitoring.events import Event
from monitoring.services import alert_raise, alert_resolve, emit
from strategies import services as strategy_services
from strategies import slots
from strategies.models import Strategy

logger = logging.getLogger(__name__)

# Count an order against this second's budget only if the budget allows it.
_TAKE = """
local n = redis.call('incr', KEYS[1])
if n == 1 then redis.call('pexpire', KEYS[1], 2000) end
if n > tonumber(ARGV[1]) then
    redis.call('decr', KEYS[1])
    return 0
end
return 1
"""


def order_rate_take(
    *, account: BrokerAccount, reason: str, deadline: float, lock: locks.ExecutionLock | None = None
) -> bool:
    """Wait for a slot in the account's per-second order budget, keeping ``lock`` alive;
    False if none came by ``deadline`` (monotonic). BUYs and SELLs leave the reserve to
    stop-losses."""
    limit = _rate_limit(account, reason)
    take = redis_script(_TAKE)
    while True:
        if lock is not None:
            lock.keepalive()
        now = time.time()
        if take(keys=[redis_keys.order_rate(account.pk, int(now))], args=[limit]):
            return True
        # Into the next second, spread out so waiting workers do not all retry at once.
        pause = (1 - now % 1) + random.uniform(0, 0.05)
        if time.monotonic() + pause >= deadline:
            return False
        time.sleep(pause)


def _rate_limit(account: BrokerAccount, reason: str) -> int:
    if account.kind == "kite":  # Kite's own figure, or a lower ORDER_RATE_KITE: never past what Kite allows
        capacity = min(int(settings.ORDER_RATE_LIMITS.get("kite", 10**6)), KITE_LIMITS.orders_per_second)
    else:
        capacity = int(settings.ORDER_RATE_LIMITS.get(account.kind, min(settings.ORDER_RATE_LIMITS.values())))
    return capacity if reason == Order.Reason.STOPLOSS else capacity - settings.ORDER_RATE_STOPLOSS_RESERVE


def lock_and_rate_take(*, strategy_id: int, account: BrokerAccount, reason: str) -> locks.ExecutionLock | None:
    """The strategy's lock with a slot in this second's order rate, in one Redis round trip:
    None if another worker holds the lock; the lock's ``rate_key`` is None if no slot was
    free (``order_rate_take`` waits for one)."""
    return locks.lock_acquire(
        strategy_id=strategy_id,
        rate_key=redis_keys.order_rate(account.pk, int(time.time())),
        rate_limit=_rate_limit(account, reason),
    )


def halts_in_force() -> QuerySet[EntryHalt]:
    """The halts that refuse BUYs now: those until lifted, and those not lapsed yet."""
    return EntryHalt.objects.filter(Q(until__isnull=True) | Q(until__gt=timezone.now()))


def entries_halted(*, account: BrokerAccount) -> EntryHalt | None:
    return halts_in_force().filter(Q(account__isnull=True) | Q(account=account)).first()


def entries_halt(*, reason: str, account: BrokerAccount | None = None, until: datetime | None = None) -> EntryHalt:
    """The kill switch: no new BUY (for ``account``, or every account) until lifted, or until
    ``until``. An account's one halt only ever grows: one that lapses is extended (or made
    lasting) by a later one, never shortened, and a lapsed one is replaced."""
    try:
        with transaction.atomic():
            return EntryHalt.objects.create(account=account, reason=reason[:200], until=until)
    except IntegrityError:
        halt = EntryHalt.objects.get(account=account)
    lapsed = halt.until is not None and halt.until <= timezone.now()
    if lapsed or (halt.until is not None and (until is None or until > halt.until)):
        EntryHalt.objects.filter(pk=halt.pk).update(reason=reason[:200], until=until)
        halt.refresh_from_db()
    return halt


def entries_resume(*, account: BrokerAccount | None = None) -> int:
    with transaction.atomic():
        deleted, _ = EntryHalt.objects.filter(account=account).delete()
        if deleted and account is not None:
            alert_resolve(kind="safety_abort", key=f"account:{account.pk}", resolution="entries resumed")
    return deleted


def broker_error_record(*, account: BrokerAccount) -> bool:
    """Count a broker error on the account's orders; trip X5 on the one that reaches the
    limit in the current window (exactly once a window). True if this call tripped it."""
    window = settings.SAFETY_WINDOW_SECONDS
    key = redis_keys.broker_errors(account.pk, int(time.time()) // window)
    pipe = get_redis().pipeline(transaction=True)
    pipe.incr(key)
    pipe.expire(key, window * 2)
    count = int(pipe.execute()[0])
    if count != settings.SAFETY_MAX_BROKER_ERRORS:
        return False
    account_safety_abort(account=account, reason=f"{count} broker errors within {window} s")
    return True


def broker_failing_mark(*, account: BrokerAccount) -> bool:
    """Mark the account's orders as failing at the broker for STOPLOSS_SLOT_SECONDS; True
    if they already were (another order's error, or an earlier one's): a storm, in which a
    stop-loss attempts once and leaves its retries to settlement rather than hold one of
    the stop-loss worker's few slots that other accounts' stops need."""
    ttl = max(1, int(settings.STOPLOSS_SLOT_SECONDS * 1000))
    return get_redis().set(redis_keys.broker_failing(account.pk), 1, px=ttl, get=True) is not None


def strategies_stop_and_exit(strategies: Iterable[Strategy]) -> tuple[list[Strategy], list[int]]:
    """Stop each strategy and claim the exit (reason ABORT) of a position it holds, each by a
    compare-and-set from the state it was read in: one a stop-loss or a SELL claimed first
    keeps that exit (one exit per position). Returns those stopped and the ids whose exit is
    to be sent (``exits_send``), after the events that explain them are recorded."""
    exiting: list[int] = []
    stopped: list[Strategy] = []
    for strategy in strategies:
        holds = strategy.position == Strategy.Position.BOUGHT
        changes: dict[str, object] = {"status": Strategy.Status.STOPPED}
        if holds:
            changes.update(position=Strategy.Position.EXITING, exit_reason=Strategy.ExitReason.ABORT)
        if strategy_services.strategy_transition(
            strategy_id=strategy.pk,
            expected={"status": strategy.status, "position": strategy.position},
            changes=changes,
        ):
            stopped.append(strategy)
            if holds:
                exiting.append(strategy.pk)
    return stopped, exiting


def exits_send(*, stopped: Iterable[Strategy], exiting: Iterable[int]) -> None:
    """Take the stopped strategies' slots off beat's schedule and send the claimed exits."""
    for strategy in stopped:
        slots.unschedule_strategy(strategy)
    for strategy_id in exiting:
        task_send(
            TaskName.EXECUTE_SELL,
            args=(strategy_id,),
            kwargs={"reason": Strategy.ExitReason.ABORT.value},
            expires=settings.SELL_EXPIRES_SECONDS,
        )


def account_safety_abort(*, account: BrokerAccount, reason: str) -> list[int]:
    """X5: halt the account's entries, stop its running strategies, exit the positions
    they hold (reason ABORT); returns the ids of the strategies whose exit was enqueued."""
    entries_halt(account=account, reason=f"safety abort: {reason}")
    stopped, exiting = strategies_stop_and_exit(
        Strategy.objects.filter(broker_account=account, status=Strategy.Status.RUNNING)
    )
    emit(
        Event.X5_SAFETY_ABORT,
        user=account.owner,
        message=f"Trading on '{account.label}' aborted: {reason}",
        payload={
            "broker_account_id": account.pk,
            "reason": reason,
            "stopped": [s.pk for s in stopped],
            "exiting": exiting,
        },
    )
    alert_raise(
        kind="safety_abort",
        key=f"account:{account.pk}",
        user=account.owner,
        message=f"Trading on '{account.label}' was stopped for safety ({reason}); open positions are being exited",
        payload={"broker_account_id": account.pk, "reason": reason, "at": timezone.now().isoformat()},
    )
    logger.error("safety abort", extra={"broker_account_id": account.pk, "reason": reason})
    exits_send(stopped=stopped, exiting=exiting)
    return exiting
