"""The paper broker's tick stream: a simulated market stepped for the subscribed instruments,
continuing from the last price the system saw, each step handed over as one batch."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from brokers.adapters.base import FeedEvents, TickHandler
from brokers.simulated_market import SimulatedMarket

logger = logging.getLogger(__name__)


class PaperTickStream:
    """Steps a simulated market for the subscribed instruments every ``interval`` seconds
    and hands each step's ticks to the handler as one batch."""

    def __init__(
        self,
        on_ticks: TickHandler,
        events: FeedEvents | None = None,
        *,
        interval: float,
        market: SimulatedMarket | None = None,
    ) -> None:
        self._on_ticks = on_ticks
        self._events = events
        self._interval = interval
        self._market = market or SimulatedMarket()
        self._subscribed: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def connected(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping.is_set()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="paper-ticks", daemon=True)
        self._thread.start()
        if self._events is not None:
            self._events.on_connected()

    def stop(self) -> None:
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=max(5.0, self._interval * 2))
        if thread is not None and self._events is not None:
            self._events.on_disconnected("stopped")

    def subscribe(self, instruments: Iterable[tuple[str, str]]) -> None:
        keys = {(exchange.upper(), symbol.upper()) for exchange, symbol in instruments}
        for exchange, symbol in keys:
            # Continue the walk from the last price the system saw, not from the reference price.
            raw = get_redis().hget(redis_keys.price(exchange, symbol), "price")
            if raw and self._market.instrument(exchange, symbol) is not None:
                self._market.set_price(exchange, symbol, float(raw))
        with self._lock:
            self._subscribed |= keys

    def unsubscribe(self, instruments: Iterable[tuple[str, str]]) -> None:
        with self._lock:
            self._subscribed -= {(exchange.upper(), symbol.upper()) for exchange, symbol in instruments}

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            with self._lock:
                keys = sorted(self._subscribed)
            if not keys:
                continue
            ticks = self._market.step(keys)
            if not ticks:
                continue
            try:
                self._on_ticks(ticks)
            except Exception as error:  # a failing handler must not kill the feed
                logger.exception("paper tick handler failed")
                if self._events is not None:
                    self._events.on_error(f"tick handler failed: {error.__class__.__name__}")
