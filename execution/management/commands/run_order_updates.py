"""The orderupdates process: follows every active Kite account's order updates on its ticker
(``brokers.order_updates``) and applies each to its order (``execution.services.updates``), so a
follow learns its fill without asking the broker, until SIGTERM/SIGINT."""

import logging
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from brokers.adapters.base import BrokerOrder
from brokers.order_updates import OrderUpdateStreams
from execution.services.inbox import order_updates_mark_live
from execution.services.updates import order_update_apply

logger = logging.getLogger(__name__)

# How often the accounts' live marks are renewed; a mark lives a few of these, so a process that
# died stops the follows' waiting for its updates within seconds.
_RENEW_SECONDS = 1.0
_LIVE_TTL_SECONDS = 5.0
# Applying an update is a Redis push, and rarely the settling of an order nobody follows: a few
# threads keep one slow settle from holding the others (and the connections' threads never wait).
_APPLY_THREADS = 4


class Command(BaseCommand):
    help = "Follow the Kite accounts' order updates (ticker order messages) and apply them to their orders."

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        pool = ThreadPoolExecutor(max_workers=_APPLY_THREADS, thread_name_prefix="order-update")

        def on_update(account_id: int, seen: BrokerOrder) -> None:
            pool.submit(_apply, account_id, seen)

        def on_live(account_id: int, live: bool) -> None:
            order_updates_mark_live(account_id=account_id, live=live, ttl=_LIVE_TTL_SECONDS)

        streams = OrderUpdateStreams(on_update=on_update, on_live=on_live)
        logger.info("order updates started")
        synced_at = float("-inf")
        try:
            while not stop.is_set():
                now = time.monotonic()
                if now - synced_at >= settings.ORDER_UPDATE_ACCOUNTS_SECONDS:
                    synced_at = now
                    try:
                        streams.sync()
                    except Exception:  # the database away for a moment: the next round tries again
                        logger.exception("order updates: reading the accounts failed")
                    close_old_connections()
                streams.renew_live()
                stop.wait(_RENEW_SECONDS)
        finally:
            streams.stop()
            pool.shutdown(wait=True)
            logger.info("order updates stopped")


def _apply(account_id: int, seen: BrokerOrder) -> None:
    close_old_connections()
    try:
        order_update_apply(account_id=account_id, seen=seen)
    except Exception:  # the follow's polling, and settlement, still settle the order
        logger.exception("order update not applied", extra={"broker_account_id": account_id})
