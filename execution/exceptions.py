"""Execution's domain errors (the one error contract of ``algotrader.exceptions``)."""

from algotrader.exceptions import ApplicationError, Conflict, NotFound


class OrderConflict(Conflict):
    """A database constraint refused a second live order (or a second filled BUY) for a
    strategy: another worker got there first, and this one must place nothing."""

    code = "order_conflict"
    message = "This strategy already has an order for this."


class LockConflict(Conflict):
    code = "lock_conflict"
    message = "Another worker is executing this strategy."


class OrderNotFound(NotFound):
    code = "order_not_found"
    message = "No order with this id."


class AccountHasOpenPositions(Conflict):
    """Deleting an account that still holds shares, or has an order live at the broker: the
    position must be closed first, or nobody would be left to watch its stop-loss."""

    code = "positions_open"
    message = (
        "This account holds an open position (or has an order still live at the broker): "
        "close it, or wait for its exit to fill, then delete the account."
    )


class RiskLimitExceeded(ApplicationError):
    """A BUY would pass one of the user's or the account's risk limits: it is refused before
    its order intent is written, so nothing of it reaches the broker."""

    code = "risk_limit_exceeded"
    status = 409

    def __init__(self, message: str, *, limit: str, scope: str, allowed: str, would_be: str) -> None:
        super().__init__(message, extra={"limit": limit, "scope": scope, "allowed": allowed, "would_be": would_be})
        self.limit = limit
        self.scope = scope
