"""Placing an order at the broker: one attempt (``order_attempt``: a slot in the account's
order rate, the request with the order's tag, one call, its outcome classified and its
failure recorded) and the policy around it (``order_place``): transient errors retried
with jittered backoff within a deadline (E4); no answer, the order is UNKNOWN and looked
up by its tag (adopted, or FAILED and replaced by a new tag: E4); permanent errors
failed fast (B4); an acceptance recorded (B3, L2) or handed to the order's follower.
A stop-loss retries only within its slot (``retry_seconds``): settlement places it again.

Broker calls are made outside any database transaction: no row lock is held across the
network.
"""

from __future__ import annotations

import enum
import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from brokers.adapters.base import BrokerAdapter, OrderType
from brokers.adapters.registry import shared_adapter_for
from brokers.exceptions import AmbiguousOutcome, BrokerAuthError, BrokerError, OrderRejected
from brokers.services import broker_account_mark_token_expired
from execution.models import Order
from execution.services import safety
from execution.services.locks import ExecutionLock
from execution.services.orders import (
    about,
    error_text,
    order_accepted,
    order_attempt_count,
    order_broker_request,
    order_end_unfilled,
    order_exchange_log,
    order_mark_unknown,
    order_replace,
    order_request_logged,
)
from execution.services.reconcile import order_reconcile
from monitoring.events import Event
from monitoring.metrics import TimedAdapter
from monitoring.services import alert_raise, emit, error_log
from strategies.buy_window import buy_window_open
from strategies.models import Strategy

Status = Order.Status

logger = logging.getLogger(__name__)


@contextmanager
def broker_adapter(strategy: Strategy) -> Iterator[BrokerAdapter]:
    """The account's adapter for one execution: the process's shared one, whose warm
    connection saves the stop-loss a TCP handshake; the registry owns (never close) it.
    Its broker calls are timed into the metrics."""
    yield TimedAdapter(shared_adapter_for(strategy.broker_account))


def retry_seconds(order: Order) -> float:
    """How long transient broker errors are retried in place: a SELL longer than a BUY. A
    stop-loss within its slot, and an exit of it placed again (by settlement, or the rest
    of a partial fill) once: its task must not hold one of the stop-loss worker's few
    slots for long, and settlement's backoff does the waiting between its rounds."""
    if order.reason == Order.Reason.STOPLOSS:
        return 0.0 if order.retry_of_id is not None else float(settings.STOPLOSS_SLOT_SECONDS)
    if order.reason == Order.Reason.BUY:
        return float(settings.ORDER_RETRY_SECONDS_BUY)
    return float(settings.ORDER_RETRY_SECONDS_SELL)


def failure_alert_due(order: Order) -> bool:
    """Whether the user is alerted (``broker_unreachable``, ``exit_failed``) that ``order``
    failed for a reason that may pass. A stop-loss's exit is retried by settlement past its
    slot, and alerted as when its task retried for ORDER_RETRY_SECONDS_STOPLOSS: once its
    first order is that old, the slot that saw the last failure counted in full."""
    if order.reason != Order.Reason.STOPLOSS:
        return True
    first = (
        Order.objects.filter(strategy_id=order.strategy_id, side=Order.Side.SELL, reason=Order.Reason.STOPLOSS)
        .order_by("id")
        .values_list("created_at", flat=True)
        .first()
    )
    quiet = float(settings.ORDER_RETRY_SECONDS_STOPLOSS) - float(settings.STOPLOSS_SLOT_SECONDS)
    return first is None or timezone.now() >= first + timedelta(seconds=quiet)


def _backoff(reason: str, attempt: int) -> float:
    """Full jitter over an exponential ceiling; a stop-loss starts its retries sooner."""
    base = 0.05 if reason == Order.Reason.STOPLOSS else 0.2
    ceiling = min(float(settings.ORDER_RETRY_BACKOFF_MAX_SECONDS), base * 2 ** max(attempt - 1, 0))
    return random.uniform(ceiling / 2, ceiling)


# (order, broker order id, request logged) -> True if the taker records the acceptance.
AcceptedHandOff = Callable[[Order, str, dict[str, Any]], bool]


def _broker_down(order: Order, strategy: Strategy, error: str) -> None:
    """Broker API downtime: transient errors outlasted an order's whole retry window."""
    alert_raise(
        kind="broker_unreachable",
        key=f"account:{strategy.broker_account_id}",
        user=strategy.owner,
        message=f"The broker kept failing for '{strategy.broker_account.label}': {error}"[:500],
        payload={"broker_account_id": strategy.broker_account_id, "order_id": order.pk, "error": error[:300]},
    )


class Outcome(enum.Enum):
    """What one attempt at the broker came to; ``permanent`` on the error alone decides
    between retrying and failing."""

    ACCEPTED = "accepted"
    NO_ANSWER = "no_answer"  # the request went out and no answer came back (AmbiguousOutcome)
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    NO_RATE = "no_rate"  # no room in the account's order rate before the deadline: not sent


@dataclass(frozen=True)
class Attempt:
    outcome: Outcome
    request: dict[str, Any]  # as logged (L2): never a credential
    broker_order_id: str = ""
    error: BrokerError | None = None
    storm: bool = False  # the account's orders were already failing at the broker (``broker_failing_mark``)


def order_attempt(
    *,
    order: Order,
    strategy: Strategy,
    adapter: BrokerAdapter,
    deadline: float,
    lock: ExecutionLock | None,
    rate_taken: bool = False,
) -> Attempt:
    """One attempt at the broker: a slot in the account's order rate (unless ``rate_taken``),
    the request with the order's tag, one call, and what it came to. A failure is recorded
    here (L2, the attempt, and the error log and X5's count unless the broker refused the
    order itself); an acceptance is the policy's to record (``order_place``)."""
    request = order_broker_request(order, strategy)
    logged_request = order_request_logged(request)
    # A protective stop placed to rest is not an exit in a hurry: it leaves the stop-losses' reserve
    # to them (a burst of fills would otherwise spend it, and the stop-losses meet the broker's 429).
    rate_reason = Order.Reason.SELL if order.protective and order.order_type != OrderType.MARKET else order.reason
    if not rate_taken and not safety.order_rate_take(
        account=strategy.broker_account, reason=rate_reason, deadline=deadline, lock=lock
    ):
        return Attempt(Outcome.NO_RATE, logged_request)
    try:
        broker_order_id = adapter.place_order(request)
    except BrokerError as error:
        order_exchange_log(order, strategy, logged_request, {"error": error_text(error)})
        ambiguous = isinstance(error, AmbiguousOutcome)
        storm = False
        if not isinstance(error, OrderRejected):  # a refused order says nothing about the broker's health
            message = "No answer to an order" if ambiguous else "Order placement failed"
            error_log(source="broker", error=error, strategy=strategy, order=order, message=message)
            safety.broker_error_record(account=strategy.broker_account)
            storm = safety.broker_failing_mark(account=strategy.broker_account)
        order_attempt_count(order, error_text(error))
        if ambiguous:
            return Attempt(Outcome.NO_ANSWER, logged_request, error=error, storm=storm)
        outcome = Outcome.PERMANENT if error.permanent else Outcome.TRANSIENT
        return Attempt(outcome, logged_request, error=error, storm=storm)
    return Attempt(Outcome.ACCEPTED, logged_request, broker_order_id=broker_order_id)


def order_place(
    *,
    order: Order,
    strategy: Strategy,
    adapter: BrokerAdapter,
    lock: ExecutionLock | None,
    rate_taken: bool = False,
    hand_off: AcceptedHandOff | None = None,
) -> Order:
    """Place ``order`` (PENDING) and return the order that stands for it at the end: PLACED,
    or final (REJECTED/FAILED), possibly a replacement with a new tag after a lost one.
    ``lock``: the strategy's, kept alive while this waits. ``rate_taken``: the first
    attempt's slot in the account's order rate is already taken (with the strategy's lock,
    in the same Redis round trip). ``hand_off``: called with the accepted order, its broker
    id and the request logged; if it returns True, recording the acceptance
    (``order_accepted``) is the taker's, and the order is returned still PENDING: the only
    way this returns a PENDING order."""
    deadline = time.monotonic() + retry_seconds(order)
    attempt = 0
    while True:
        if lock is not None:
            lock.keepalive()
        if _buy_too_late(order):
            why = "The BUY is past its valid time."
            order_end_unfilled(order, strategy, Status.FAILED, why, alert="BUY not placed: too late")
            return order
        attempt += 1
        tried = order_attempt(
            order=order,
            strategy=strategy,
            adapter=adapter,
            deadline=deadline,
            lock=lock,
            rate_taken=attempt == 1 and rate_taken,
        )
        if tried.outcome is Outcome.ACCEPTED:
            if hand_off is None or not hand_off(order, tried.broker_order_id, tried.request):
                order_accepted(
                    order=order, strategy=strategy, broker_order_id=tried.broker_order_id, request=tried.request
                )
            return order
        if attempt == 1 and tried.storm and order.reason == Order.Reason.STOPLOSS:
            # Another order met the storm first: this slot is given up after one attempt.
            deadline = time.monotonic()
        order, again = _after_failure(order, strategy, adapter, lock, tried, attempt, deadline)
        if not again:
            return order


def _after_failure(
    order: Order,
    strategy: Strategy,
    adapter: BrokerAdapter,
    lock: ExecutionLock | None,
    tried: Attempt,
    attempt: int,
    deadline: float,
) -> tuple[Order, bool]:
    """The policy for an attempt that was not accepted: the order that stands for it now,
    and whether to attempt again."""
    if tried.outcome is Outcome.NO_RATE:
        why = "No room in the account's order rate"
        order_end_unfilled(order, strategy, Status.FAILED, why, alert="Order not placed: rate")
        return order, False
    assert tried.error is not None
    if tried.outcome is Outcome.NO_ANSWER:
        return _no_answer(order, strategy, adapter, lock, tried.error, deadline)
    if tried.outcome is Outcome.PERMANENT:
        _refused(order, strategy, tried.error)
        return order, False
    return order, _retry_wait(order, strategy, tried.error, attempt, deadline)


def _buy_too_late(order: Order) -> bool:
    """A BUY past its window is not placed, nor placed again: its moment has passed."""
    if order.side != Order.Side.BUY or order.valid_until is None:
        return False
    return not buy_window_open(valid_until=order.valid_until)


def _no_answer(
    order: Order,
    strategy: Strategy,
    adapter: BrokerAdapter,
    lock: ExecutionLock | None,
    error: BrokerError,
    deadline: float,
) -> tuple[Order, bool]:
    """UNKNOWN, looked up by its tag for a grace period: adopted, or past the deadline
    FAILED as lost (no attempt again); else FAILED and replaced by a new intent with a new
    tag, to be attempted next (unless it was settled meanwhile)."""
    order_mark_unknown(order)
    grace = float(settings.ORDER_UNKNOWN_GRACE_SECONDS)
    if order_reconcile(order=order, strategy=strategy, adapter=adapter, grace=grace, lock=lock):
        return order, False
    if time.monotonic() >= deadline:
        alert = "Order lost at the broker, retries exhausted"
        order_end_unfilled(order, strategy, Status.FAILED, error_text(error), alert=alert, lost=True)
        _gave_up(order, strategy, error_text(error))
        return order, False
    order = order_replace(order, strategy, why=error_text(error))
    return order, order.status not in Order.FINAL


def _refused(order: Order, strategy: Strategy, error: BrokerError) -> None:
    """A permanent error: REJECTED, or FAILED with the account's session marked expired."""
    status = Status.FAILED if isinstance(error, BrokerAuthError) else Status.REJECTED
    alert = f"{order.reason} refused by the broker: {error.message}"
    order_end_unfilled(order, strategy, status, error_text(error), alert=alert)
    if isinstance(error, BrokerAuthError):
        broker_account_mark_token_expired(account=strategy.broker_account, reason=error.message)


def _gave_up(order: Order, strategy: Strategy, error: str) -> None:
    """Retries in place are over: the broker is alerted as down, unless this is a stop-loss
    whose exit settlement goes on placing quietly for now (``failure_alert_due``)."""
    if failure_alert_due(order):
        _broker_down(order, strategy, error)
    else:
        logger.info("stop-loss not placed within its slot: left to settlement", extra={"order_id": order.pk})


def _retry_wait(order: Order, strategy: Strategy, error: BrokerError, attempt: int, deadline: float) -> bool:
    """A transient error: E4 and a jittered backoff before the next attempt (True), or,
    if that would pass the deadline, FAILED with the broker alerted as down (False)."""
    delay = _backoff(order.reason, attempt)
    if time.monotonic() + delay >= deadline:
        alert = f"{order.reason} not placed: the broker kept failing"
        order_end_unfilled(order, strategy, Status.FAILED, error_text(error), alert=alert)
        _gave_up(order, strategy, error_text(error))
        return False
    emit(
        Event.E4_ORDER_RETRY_REQUIRED,
        strategy=strategy,
        order=order,
        payload={**about(order, strategy), "error": error_text(error), "attempt": attempt, "delay": round(delay, 3)},
    )
    time.sleep(delay)
    return True
