"""Execution's domain errors (the one error contract of ``algotrader.exceptions``)."""

from algotrader.exceptions import Conflict, NotFound


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
