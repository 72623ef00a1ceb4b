"""The market listener process: connects the configured feed (the paper broker's
simulated market by default, a Kite account's ticker when ``MARKET_FEED_ACCOUNT_ID``
names one) and forwards each frame of ticks to the ``ticks`` channel until SIGTERM/SIGINT."""

import logging
import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from brokers.adapters.base import FeedEvents, TickHandler, TickStream
from brokers.adapters.registry import adapter_for
from brokers.models import BrokerAccount
from market.listener import MarketListener
from market.signals import listener_started

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run the market-data listener (broker tick WebSocket to the channel layer)."

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        account_id = settings.MARKET_FEED_ACCOUNT_ID
        if account_id:
            account = BrokerAccount.objects.filter(pk=account_id).first()
            if account is None:
                raise CommandError(f"MARKET_FEED_ACCOUNT_ID={account_id}: no such broker account")
            simulated = account.kind == BrokerAccount.Kind.PAPER or settings.KITE_SIMULATED
        else:
            account = BrokerAccount(kind=BrokerAccount.Kind.PAPER)  # the paper feed needs no saved account
            simulated = True
        adapter = adapter_for(account)

        def stream_factory(on_ticks: TickHandler, events: FeedEvents) -> TickStream:
            return adapter.tick_stream(on_ticks, events)

        listener = MarketListener(stream_factory=stream_factory, simulated_venue=simulated)
        logger.info("market listener started", extra={"feed": adapter.kind, "account_id": account.pk})
        # Recovery (X1, X4) starts beside the stream (execution.recovery.watch receives this).
        started_work = threading.Event()
        listener_started.send(sender=MarketListener, feed=adapter.kind, stop=started_work)
        try:
            listener.run(stop)
        finally:
            started_work.set()
