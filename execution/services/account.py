"""Deleting a user's account. It acts on every app above users (strategies stopped, broker
credentials erased, orders kept), so it lives here, at the top, and users knows nothing of it.
Orders and events are records a broker-facing system must keep: they stay, pointing at a user
row that no longer names anyone."""

from __future__ import annotations

import logging

from django.db import transaction

from algotrader.exceptions import ValidationFailed
from algotrader.users.models import User
from algotrader.users.services import user_erase
from brokers.models import BrokerAccount
from brokers.services import broker_account_erase
from execution.exceptions import AccountHasOpenPositions
from execution.models import Order
from strategies import services as strategy_services
from strategies.models import Strategy

logger = logging.getLogger(__name__)


def account_delete(*, user: User, password: str) -> None:
    """Delete the account, its password given again: refused (409) while a strategy holds or
    is entering or exiting a position, or an order is live; otherwise its running strategies
    STOP, its broker accounts lose their credentials, and the user row is anonymised. The
    user, broker accounts and strategies are locked in that order (the engine's order), so a
    BUY that fires meanwhile waits, then finds its strategy stopped; strategy_stop clears
    Redis before this commits, and a failure after that leaves recovery to restore it."""
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        if not user.check_password(password):
            raise ValidationFailed(fields={"password": ["The password is wrong."]})
        accounts = list(BrokerAccount.objects.select_for_update().filter(owner=user).order_by("pk"))
        strategies = list(Strategy.objects.select_for_update().filter(owner=user).order_by("pk"))
        holding = {s.pk for s in strategies if s.position in strategy_services.OPEN_POSITIONS}
        live = set(
            Order.objects.filter(strategy__owner=user, status__in=Order.LIVE).values_list("strategy_id", flat=True)
        )
        if holding | live:
            raise AccountHasOpenPositions(extra={"strategies": sorted(holding | live)})
        for strategy in strategies:
            if strategy.status == Strategy.Status.RUNNING:
                strategy_services.strategy_stop(user=user, strategy_id=strategy.pk)
        for account in accounts:
            broker_account_erase(account=account)
        user_erase(user=user)
    logger.info(
        "account deleted",
        extra={"user_id": user.pk, "strategies": len(strategies), "broker_accounts": len(accounts)},
    )
