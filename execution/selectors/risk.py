"""The risk limits as the user and operators read them: a user's own, or one account's."""

from algotrader.users.models import User
from brokers.models import BrokerAccount
from execution.models import RiskLimits


def risk_limits_get(*, user: User, account: BrokerAccount | None = None) -> RiskLimits:
    """The limits set (the account must be the user's: callers fetch it through the user), or
    an unsaved row of nulls (no limit) if none were ever set."""
    found = RiskLimits.objects.filter(user=user, account=account).first()
    return found if found is not None else RiskLimits(user=user, account=account)
