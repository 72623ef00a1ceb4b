"""The market listener process: connects the configured feed (the paper broker's
simulated market by default, Kite accounts' tickers when ``MARKET_FEED_ACCOUNT_ID``
names them, comma-separated) and forwards each frame of ticks to the ``ticks`` channel
until SIGTERM/SIGINT."""

import logging
import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from brokers.adapters.base import BrokerAdapter, FeedEvents, TickHandler, TickStream
from brokers.adapters.registry import adapter_for
from brokers.models import BrokerAccount
from market.feed_pool import StreamFactory
from market.listener import MarketListener
from market.signals import listener_started

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run the market-data listener (broker tick WebSocket to the channel layer)."

    def handle(self, *args: Any, **options: Any) -> None:
        account_ids = settings.MARKET_FEED_ACCOUNT_IDS
        if account_ids:
            accounts = {account.pk: account for account in BrokerAccount.objects.filter(pk__in=account_ids)}
            missing = [str(pk) for pk in account_ids if pk not in accounts]
            if missing:
                raise CommandError(f"MARKET_FEED_ACCOUNT_ID: no broker account {', '.join(missing)}")
            feed_accounts = [accounts[pk] for pk in dict.fromkeys(account_ids)]
            keys = [a.api_key for a in feed_accounts if a.kind == BrokerAccount.Kind.KITE]
            if len(set(keys)) < len(keys):  # the broker counts connections per key, not per account
                raise CommandError("MARKET_FEED_ACCOUNT_ID: two of the accounts share an API key")
            simulated = settings.KITE_SIMULATED or all(a.kind == BrokerAccount.Kind.PAPER for a in feed_accounts)
        else:
            feed_accounts = [BrokerAccount(kind=BrokerAccount.Kind.PAPER)]  # the paper feed needs no saved account
            simulated = True
        stop = threading.Event()
        # Recovery (X1, X4) starts beside the stream (execution.recovery.watch receives this).
        started_work = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        # One factory per account: each opens as many connections on its API key as the listener asks for.
        adapters = [adapter_for(account) for account in feed_accounts]
        listener = MarketListener(stream_factory=[_stream_factory(a) for a in adapters], simulated_venue=simulated)
        feed = adapters[0].kind
        logger.info("market listener started", extra={"feed": feed, "account_ids": [a.pk for a in feed_accounts]})
        listener_started.send(sender=MarketListener, feed=feed, stop=started_work)
        try:
            listener.run(stop)
        finally:
            started_work.set()


def _stream_factory(adapter: BrokerAdapter) -> StreamFactory:
    def open_stream(on_ticks: TickHandler, events: FeedEvents) -> TickStream:
        return adapter.tick_stream(on_ticks, events)

    return open_stream
