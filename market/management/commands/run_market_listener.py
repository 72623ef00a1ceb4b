"""The market listener process: connects the configured feed and forwards each
frame of ticks to the ``ticks`` channel. Until a feed is configured it waits
quietly for shutdown instead of exiting, so the Procfile stays up."""

import logging
import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run the market-data listener (broker tick WebSocket to the channel layer)."

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        logger.info("market listener started: no market-data feed configured yet, idling")
        stop.wait()
        logger.info("market listener stopped")
