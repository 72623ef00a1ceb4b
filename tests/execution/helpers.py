"""Small readers shared by the execution tests, and the threads their races run in."""

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import connection

from brokers.models import PaperOrder
from execution.models import Order
from monitoring.models import EventLog
from strategies.models import Strategy


def codes(strategy: Strategy) -> list[str]:
    return list(EventLog.objects.filter(strategy=strategy).order_by("id").values_list("code", flat=True))


def orders(strategy: Strategy) -> list[Order]:
    return list(Order.objects.filter(strategy=strategy).order_by("id"))


def paper_book(strategy: Strategy) -> list[PaperOrder]:
    return list(PaperOrder.objects.filter(account_id=strategy.broker_account_id).order_by("id"))


def together(calls: list[Callable[[], Any]], *, jitter: float = 0.0) -> None:
    """Run ``calls`` in threads of their own, released at one instant (each after a random
    ``jitter`` seconds at most, so every order of arrival occurs), each closing its database
    connection; re-raises the first failure."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            if jitter:
                time.sleep(random.uniform(0, jitter))
            call()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        for future in [pool.submit(run, call) for call in calls]:
            future.result()
