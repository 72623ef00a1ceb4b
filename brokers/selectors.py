"""Reads of broker accounts. Every lookup goes through the requesting user, so
another user's account id is simply not found."""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils import timezone

from algotrader.users.models import User
from brokers.exceptions import BrokerAccountNotFound
from brokers.models import BrokerAccount


def broker_account_list(*, user: User) -> QuerySet[BrokerAccount]:
    return BrokerAccount.objects.filter(owner=user, deleted_at__isnull=True)


def broker_account_get(*, user: User, account_id: int) -> BrokerAccount:
    account = broker_account_list(user=user).filter(pk=account_id).first()
    if account is None:
        raise BrokerAccountNotFound()
    return account


def broker_account_can_enter(account: BrokerAccount) -> bool:
    """New entries (BUYs) need a live session; exits are the engine's call, not this one's."""
    if account.status != BrokerAccount.Status.ACTIVE:
        return False
    return account.token_expires_at is None or account.token_expires_at > timezone.now()
