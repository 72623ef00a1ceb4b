"""Celery queue names, in one place: stop-losses get a queue and a worker of their own
so that an exit never waits behind a burst of BUY or SELL tasks."""

from enum import StrEnum


class CeleryQueue(StrEnum):
    ORDERS = "orders"
    STOPLOSS = "stoploss"
