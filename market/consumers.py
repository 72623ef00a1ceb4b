"""The tick consumer, run by ``manage.py runworker ticks``: each message is one frame's
batch of ticks from the market listener. It applies the batch (M1, M2, stop-loss tasks,
see ``market.services``) and pushes throttled live prices to the app's sockets."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from asgiref.sync import async_to_sync
from channels.consumer import SyncConsumer
from django.conf import settings

from market.prices import price_group
from market.services import stoploss_enqueue_leftovers, ticks_ingest
from market.ticks import TICKS_CHANNEL

logger = logging.getLogger(__name__)

__all__ = ["TICKS_CHANNEL", "TickConsumer"]

LEFTOVER_SWEEP_SECONDS = 5.0


class TickConsumer(SyncConsumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pushed_at: dict[str, float] = {}
        self._swept_at = float("-inf")

    def ticks_batch(self, message: dict[str, Any]) -> None:
        result = ticks_ingest(message=message)
        self._push_prices(message.get("ticks") or [], result.applied)
        now = time.monotonic()
        if now - self._swept_at >= LEFTOVER_SWEEP_SECONDS:
            self._swept_at = now
            try:
                stoploss_enqueue_leftovers()
            except Exception:
                logger.exception("stop-loss leftover sweep failed")

    def _push_prices(self, ticks: list[Any], applied: list[bool]) -> None:
        """At most one price a ``MARKET_PRICE_PUSH_INTERVAL`` per instrument to its group."""
        now = time.monotonic()
        interval = settings.MARKET_PRICE_PUSH_INTERVAL
        latest: dict[str, Any] = {}
        for tick, ok in zip(ticks, applied, strict=True):
            if ok:
                latest[tick[0]] = tick
        due = [tick for instrument, tick in latest.items() if now - self._pushed_at.get(instrument, -1e18) >= interval]
        if not due:
            return
        for tick in due:
            self._pushed_at[tick[0]] = now
        layer = self.channel_layer

        async def send_all() -> None:
            results = await asyncio.gather(
                *(
                    layer.group_send(
                        price_group(instrument),
                        {"type": "price.update", "instrument": instrument, "price": str(float(price)), "ts": ts},
                    )
                    for instrument, price, ts in due
                ),
                return_exceptions=True,
            )
            failed = sum(isinstance(result, Exception) for result in results)
            if failed:  # a live price is superseded by the next one: never worth failing the batch
                logger.warning("live price push failed", extra={"failed": failed})

        async_to_sync(send_all)()
