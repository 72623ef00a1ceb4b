"""The taking half of the hand-off (a stop-loss's exit, a BUY): ``follow_order_task`` takes the
strategy's lock over from the execution that sent it (``exits.follow_hand_off``) and finishes it as
that would have. The task looks at the order once and, not final yet, sends itself again for the
next look (``resend``): no worker thread waits for the broker's fill."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from algotrader.celery import task_send
from algotrader.queues import TaskName
from brokers.adapters.base import BrokerAdapter
from brokers.models import BrokerAccount
from execution.models import Order
from execution.services import locks
from execution.services.claims import Held, strategy_locked
from execution.services.fills import (
    FOLLOW_FIRST_POLL,
    follow_backoff,
    order_cancel_rest,
    order_follow,
    order_follow_expired,
    order_poll,
    order_settle,
)
from execution.services.inbox import order_update_take, order_updates_live
from execution.services.locks import ExecutionLock
from execution.services.orders import broker_outage_resolve, order_accepted
from execution.services.outcomes import position_apply_latest_outcome
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
    resend: bool = False,
    poll: float | None = None,
    cancelled_at: float | None = None,
) -> Order | None:
    """Finish an execution handed over once the broker accepted its order: the acceptance
    recorded, the order followed, the position moved. Safe to run twice or after settlement:
    an adopted or final order is not recorded again, and only the position's latest order of
    its side moves it. ``strategy_id`` lets the lock be taken over before the order is read.
    ``resend`` (the task's way): one look, and the next one sent as a task (``poll``: the wait
    that preceded this look, None for the first; ``cancelled_at``: a BUY's rest cancelled)."""
    checks = _Checks(accepted_at, poll, cancelled_at) if resend and accepted_at is not None else None
    taken = None if strategy_id is None else locks.lock_take_over(strategy_id=strategy_id, token=lock_token)
    if taken is not None:
        with taken:
            order = _order_read(order_id)
            if order is None or order.strategy_id != strategy_id:
                return None
            with log_context(strategy_id=strategy_id, order_id=order.pk):
                return _follow_held(order, order.strategy, taken, broker_order_id, request, accepted_at, checks)
    order = _order_read(order_id)
    if order is None:
        return None
    strategy = order.strategy
    with log_context(strategy_id=strategy.pk, order_id=order.pk), _taken_over(strategy, lock_token) as held:
        if not held:
            return None
        order.refresh_from_db()
        return _follow_held(order, strategy, held.lock, broker_order_id, request, accepted_at, checks)


def _follow_held(
    order: Order,
    strategy: Strategy,
    lock: ExecutionLock | None,
    broker_order_id: str,
    request: dict[str, Any] | None,
    accepted_at: float | None,
    checks: _Checks | None = None,
) -> Order | None:
    """``position_follow`` with the lock held and ``order`` read under it."""
    if broker_order_id and order.status in (Order.Status.PENDING, Order.Status.UNKNOWN):
        order_accepted(order=order, strategy=strategy, broker_order_id=broker_order_id, request=request or {})
    if order.status == Order.Status.PLACED:
        with broker_adapter(strategy) as adapter:
            if checks is None or checks.poll is None:
                broker_outage_resolve(strategy=strategy)
            if checks is not None and lock is not None:
                if _check_or_resend(order, strategy, adapter, lock, checks):
                    return order  # the next look has the lock now
            else:
                order = order_follow(
                    order=order, strategy=strategy, adapter=adapter, lock=lock, accepted_at=accepted_at
                )
    elif order.is_live:
        return order  # not placed (yet): only a lookup by its tag can settle it, settlement's
    position_apply_latest_outcome(strategy, order, lock=lock)
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


@dataclass(frozen=True)
class _Checks:
    """Where a re-sent follow stands: when the broker accepted the order (wall clock, the
    sender's), the wait before this look (None: the first) and when a BUY's rest was cancelled."""

    accepted_at: float
    poll: float | None
    cancelled_at: float | None


def _first_answer_seconds(strategy: Strategy) -> float:
    """How long after its acceptance an order can first have an answer: a paper market
    order's fill is due its latency after it was placed; any other, the first poll's wait."""
    if strategy.broker_account.kind == BrokerAccount.Kind.PAPER:
        return max(float(settings.PAPER_LATENCY_MS) / 1000, 0.0)
    return FOLLOW_FIRST_POLL


def _check_or_resend(
    order: Order, strategy: Strategy, adapter: BrokerAdapter, lock: locks.ExecutionLock, checks: _Checks
) -> bool:
    """One turn of ``order_follow``'s loop, its sleep replaced by a task sent with a countdown:
    True if the next look was sent (the lock goes with it); False once the order is settled or
    given up to recovery (``order`` updated), for the caller to move the position."""
    now = time.time()
    poll = checks.poll
    if poll is None:
        # The first look not before the order can have an answer: a sooner one spends rate and a task.
        # (Within ORDER_FOLLOW_SECONDS: a paper latency set longer still sees a BUY's rest cancelled then.)
        first = min(_first_answer_seconds(strategy), float(settings.ORDER_FOLLOW_SECONDS))
        if checks.accepted_at + first > now:
            # Bounded: a sender's clock ahead of this one must not hold the follow back.
            wait = min(checks.accepted_at + first - now, first)
            return _check_later(order, strategy, adapter, lock, checks, wait=wait, poll=FOLLOW_FIRST_POLL)
        poll = FOLLOW_FIRST_POLL
    # An update the broker pushed (``updates``) answers without asking; while the account's stream
    # is up the broker is asked only once none came for ORDER_UPDATE_WAIT_SECONDS since acceptance.
    seen = order_update_take(account_id=order.account_id, broker_order_id=order.broker_order_id, timeout=0)
    via = "order_update"
    if seen is None and (
        not order_updates_live(account_id=order.account_id)
        or now - checks.accepted_at >= float(settings.ORDER_UPDATE_WAIT_SECONDS)
    ):
        seen, give_up = order_poll(order=order, strategy=strategy, adapter=adapter)
        via = "get_order"
        if give_up:
            return False
    if seen is not None and seen.status.is_final:
        order_settle(order=order, strategy=strategy, seen=seen, via=via)
        return False
    # As order_follow's: ORDER_FOLLOW_SECONDS from acceptance, then a BUY's rest is cancelled
    # and its answer awaited for ORDER_UNKNOWN_GRACE_SECONDS more; an exit is never cancelled.
    if checks.cancelled_at is None:
        deadline = checks.accepted_at + float(settings.ORDER_FOLLOW_SECONDS)
    else:
        deadline = checks.cancelled_at + float(settings.ORDER_UNKNOWN_GRACE_SECONDS)
    if now + poll > deadline and order.reason == Order.Reason.BUY and checks.cancelled_at is None:
        order_cancel_rest(order, strategy, adapter)
        checks = _Checks(checks.accepted_at, None, now)
        return _check_later(order, strategy, adapter, lock, checks, wait=FOLLOW_FIRST_POLL, poll=FOLLOW_FIRST_POLL)
    if now + poll > deadline:
        order_follow_expired(order, strategy)
        return False
    return _check_later(order, strategy, adapter, lock, checks, wait=poll, poll=follow_backoff(poll))


def _check_later(
    order: Order,
    strategy: Strategy,
    adapter: BrokerAdapter,
    lock: locks.ExecutionLock,
    checks: _Checks,
    *,
    wait: float,
    poll: float,
) -> bool:
    """Send the next look at ``order`` in ``wait`` seconds, with the lock (renewed when this
    task took it over, and again by the next: ``wait`` is at most a second or so, well inside
    EXECUTION_LOCK_SECONDS). A countdown this short is far inside the Redis visibility timeout,
    so the waiting task is not redelivered meanwhile (STYLE 6 warns of long ones). Not sent:
    False after following here, as before the hand-off, the order updated in place.

    An update pushed for the order meanwhile waits in its inbox for that look."""
    try:
        task_send(
            TaskName.FOLLOW_ORDER,
            args=(order.pk, lock.token),
            kwargs={
                "strategy_id": strategy.pk,
                "accepted_at": checks.accepted_at,
                "poll": poll,
                "cancelled_at": checks.cancelled_at,
            },
            countdown=wait,
            expires=settings.STOPLOSS_EXPIRES_SECONDS,
        )
    except Exception:
        logger.warning("next follow not sent: followed here", extra={"order_id": order.pk}, exc_info=True)
        order_follow(order=order, strategy=strategy, adapter=adapter, lock=lock)
        return False
    lock.hand_over()
    return True
