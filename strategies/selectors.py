"""Reads of strategies, always through the requesting user: another user's id is a 404."""

from typing import Any

from django.db.models import Q, QuerySet

from algotrader.users.models import User
from brokers.models import BrokerAccount
from monitoring.models import EventLog
from strategies.exceptions import StrategyNotFound
from strategies.models import RunReadiness, Strategy


def strategy_list(*, user: User) -> QuerySet[Strategy]:
    return Strategy.objects.filter(owner=user, deleted_at__isnull=True).select_related("broker_account")


def strategy_get(*, user: User, strategy_id: int, for_update: bool = False) -> Strategy:
    queryset = strategy_list(user=user)
    if for_update:
        queryset = queryset.select_for_update(of=("self",))
    strategy = queryset.filter(pk=strategy_id).first()
    if strategy is None:
        raise StrategyNotFound()
    return strategy


def strategy_timeline(*, strategy: Strategy) -> QuerySet[EventLog]:
    """Everything that happened to the strategy, oldest first: the app's timeline."""
    return EventLog.objects.filter(strategy=strategy).order_by("created_at", "id")


def strategy_readiness(*, strategy: Strategy) -> QuerySet[RunReadiness]:
    """The morning readiness check's outcomes for the strategy's runs, the latest day first."""
    return RunReadiness.objects.filter(strategy=strategy).order_by("-day", "-id")


PROTECTIVE_ORDER_FIELDS = ("status", "order_type", "trigger_price", "quantity", "broker_order_id")


def strategy_protective_order(*, strategy: Strategy) -> dict[str, Any] | None:
    """The strategy's latest protective stop order as the app shows it (None if it never had
    one): read through the orders' reverse relation, so strategies imports nothing of execution."""
    row: dict[str, Any] | None = (
        strategy.orders.filter(protective=True).order_by("-id").values(*PROTECTIVE_ORDER_FIELDS).first()
    )
    return row


def strategies_trade_on(account: BrokerAccount) -> bool:
    """Whether a strategy may still trade on ``account``: running, or holding (or buying or
    exiting) a position, whose exit needs the account's credentials."""
    return (
        Strategy.objects.filter(broker_account=account)
        .filter(
            Q(status=Strategy.Status.RUNNING)
            | Q(position__in=[Strategy.Position.BUYING, Strategy.Position.BOUGHT, Strategy.Position.EXITING])
        )
        .exists()
    )
