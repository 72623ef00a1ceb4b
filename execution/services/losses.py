"""The day's loss limit: a user's (over all their accounts) or an account's realized plus
unrealized P&L of the exchange day reaching ``max_loss_per_day`` halts new entries there until
the day ends and exits the open positions through the one exit path (G2, an L4 alert). Checked
after an exit fills (``loss_check_soon``) and every ``LOSS_CHECK_SECONDS`` for users holding."""

from __future__ import annotations

import logging
from collections import defaultdict
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from algotrader.celery import task_send
from algotrader.queues import TaskName
from brokers.models import BrokerAccount
from execution.models import RiskLimits
from execution.selectors.orders import exchange_day_bounds, exchange_today
from execution.selectors.positions import positions_of
from execution.services import safety
from monitoring.events import Event
from monitoring.services import alert_raise, emit
from strategies.models import Strategy

logger = logging.getLogger(__name__)

ZERO = Decimal(0)


def day_pnl_by_account(*, user_id: int) -> dict[int, Decimal]:
    """Realized plus unrealized P&L of the user's strategies of today, per broker account (a
    position held with no price yet counts nothing unrealized): one query and one Redis read."""
    strategies = list(Strategy.objects.filter(owner_id=user_id, trade_date=exchange_today()))
    pnl: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for position in positions_of(strategies):
        pnl[position.strategy.broker_account_id] += position.realized_pnl + (position.unrealized_pnl or ZERO)
    return pnl


def loss_limits_check(*, user_id: int) -> list[int]:
    """Trip each of the user's loss limits that today's P&L has reached; returns the ids of the
    strategies whose exit was sent. Safe to run again: the halt and the alert are one each a
    day, and an exit is claimed once per position."""
    limits = list(RiskLimits.objects.filter(user_id=user_id, max_loss_per_day__isnull=False))
    if not limits:
        return []
    pnl = day_pnl_by_account(user_id=user_id)
    exiting: list[int] = []
    for limit in limits:
        assert limit.max_loss_per_day is not None  # filtered above
        loss = -(pnl.get(limit.account_id, ZERO) if limit.account_id is not None else sum(pnl.values(), ZERO))
        if loss >= limit.max_loss_per_day:
            exiting += _loss_limit_trip(limit, loss=loss)
    return exiting


def _loss_limit_trip(limit: RiskLimits, *, loss: Decimal) -> list[int]:
    """Halt new BUYs on the limit's accounts until the exchange day ends, stop their running
    strategies and exit every position held (reason ABORT, as X5 does)."""
    day = exchange_today()
    _, day_end = exchange_day_bounds(day)
    accounts = BrokerAccount.objects.filter(owner_id=limit.user_id)
    if limit.account_id is not None:
        accounts = accounts.filter(pk=limit.account_id)
    scope = "user" if limit.account_id is None else "account"
    reason = f"loss limit: {loss} of {limit.max_loss_per_day} lost today ({scope})"
    with transaction.atomic():
        for account in accounts.order_by("pk"):
            safety.entries_halt(account=account, reason=reason, until=day_end)
        # Running ones, and stopped ones still holding (STOP that kept the position).
        held = Strategy.objects.filter(broker_account__in=accounts).filter(
            Q(status=Strategy.Status.RUNNING) | Q(status=Strategy.Status.STOPPED, position=Strategy.Position.BOUGHT)
        )
        stopped, exiting = safety.strategies_stop_and_exit(held.order_by("pk"))
        payload = {
            "scope": scope,
            "broker_account_id": limit.account_id,
            "max_loss_per_day": str(limit.max_loss_per_day),
            "loss": str(loss),
            "day": day.isoformat(),
            "stopped": [s.pk for s in stopped],
            "exiting": exiting,
        }
        message = (
            f"Today's loss of {loss} reached the limit of {limit.max_loss_per_day}: new BUYs are halted "
            "until tomorrow and open positions are being exited"
        )
        alert = alert_raise(
            kind="loss_limit",
            key=f"{scope}:{limit.account_id or limit.user_id}:{day.isoformat()}",
            user=limit.user,
            message=message,
            payload=payload,
        )
        if alert is not None or exiting:  # the crossing, or positions opened since and exited now
            emit(Event.G2_LOSS_LIMIT_REACHED, user=limit.user, message=message, payload=payload)
            logger.error("loss limit reached", extra={"user_id": limit.user_id, **payload})
        transaction.on_commit(lambda: safety.exits_send(stopped=stopped, exiting=exiting))
    return exiting


def loss_check_soon(*, user_id: int) -> None:
    """After an exit's fill (realized P&L moved): check the user's loss limits on a worker,
    if they have one, rather than on the path that settled the fill."""
    if RiskLimits.objects.filter(user_id=user_id, max_loss_per_day__isnull=False).exists():
        task_send(TaskName.CHECK_LOSS_LIMITS, args=(user_id,), expires=settings.LOSS_CHECK_SECONDS * 2)


def loss_limits_check_holding() -> int:
    """The periodic pass: every user with a loss limit and a position held today (prices move
    unrealized P&L between fills); returns how many users were checked."""
    users = (
        Strategy.objects.filter(
            trade_date=exchange_today(),
            position__in=(Strategy.Position.BOUGHT, Strategy.Position.EXITING),
            owner__risk_limits__max_loss_per_day__isnull=False,
        )
        .values_list("owner_id", flat=True)
        .distinct()
    )
    checked = 0
    for user_id in users:
        try:
            loss_limits_check(user_id=user_id)
        except Exception:  # one user's failure must not leave the others unchecked
            logger.exception("loss limit check failed", extra={"user_id": user_id})
        checked += 1
    return checked
