"""Celery queue names, in one place: stop-losses get a queue and a worker of their own
so that an exit never waits behind a burst of BUY or SELL tasks, and so do the slot
fan-outs and the sweeper, so that publishing thousands of BUYs at a market-open second
never takes the orders worker's time (one interpreter, one lock) from running them."""

from enum import StrEnum


class CeleryQueue(StrEnum):
    ORDERS = "orders"
    STOPLOSS = "stoploss"
    SCHEDULER = "scheduler"
