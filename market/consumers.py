"""The tick consumer, run by ``manage.py runworker ticks``: each message is one frame's
batch of ticks from the market listener. It applies the batch (M1, M2, stop-loss tasks,
see ``market.services``) and pushes throttled live prices to the app's sockets."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import redis
from asgiref.sync import async_to_sync
from channels.consumer import SyncConsumer
from django.conf import settings
from kombu.exceptions import OperationalError

from algotrader.redis_client import redis_script
from market.prices import price_group
from market.services import stoploss_enqueue_leftovers, stoploss_publisher_warm, ticks_ingest
from market.ticks import TICKS_CHANNEL
from market.trailing import TrailFollower
from monitoring.services import error_log

logger = logging.getLogger(__name__)

__all__ = ["TICKS_CHANNEL", "TickConsumer"]

LEFTOVER_SWEEP_SECONDS = 5.0
ERROR_REPORT_EVERY = 60.0  # seconds between L3 records while Redis stays down
# Redis (state, stop-loss index) and the Celery broker connection (which is Redis too).
REDIS_ERRORS = (redis.RedisError, OperationalError)
PUSH_CONCURRENCY = 8
# The (1-based) positions of the KEYS that exist.
_EXISTING_KEYS_LUA = """
local found = {}
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then found[#found + 1] = i end
end
return found
"""


class TickConsumer(SyncConsumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pushed_at: dict[str, float] = {}
        self._swept_at = float("-inf")
        self._error_reported_at = float("-inf")
        self._trails = TrailFollower()
        try:
            stoploss_publisher_warm()
        except Exception:  # the first stop-loss retries the connection anyway
            logger.exception("stop-loss queue not reachable at start")

    def ticks_batch(self, message: dict[str, Any]) -> None:
        try:
            result = ticks_ingest(message=message, trails=self._trails)
        except REDIS_ERRORS as error:
            # The batch is lost, not the stops: a taken trigger waits in market:sl_fired for the
            # sweep, an untaken one fires on the next tick. Raising would end the worker process.
            logger.exception(
                "tick batch not applied: Redis unavailable", extra={"ticks": len(message.get("ticks") or [])}
            )
            self._report_error(error, "Tick batch not applied")
            return
        self._push_prices(message.get("ticks") or [], result.applied)
        now = time.monotonic()
        if now - self._swept_at >= LEFTOVER_SWEEP_SECONDS:
            self._swept_at = now
            try:
                stoploss_enqueue_leftovers()
            except REDIS_ERRORS as error:
                logger.exception("stop-loss leftover sweep failed")
                self._report_error(error, "Stop-loss leftover sweep failed")
            except Exception:
                logger.exception("stop-loss leftover sweep failed")

    def _report_error(self, error: BaseException, message: str) -> None:
        """L3 at most once a minute: an outage must not write a row per batch."""
        now = time.monotonic()
        if now - self._error_reported_at < ERROR_REPORT_EVERY:
            return
        self._error_reported_at = now
        try:
            error_log(source="redis", error=error, message=message)
        except Exception:  # the database down too: the log line above is all there is
            logger.exception("L3 not recorded")

    def _push_prices(self, ticks: list[Any], applied: list[bool]) -> None:
        """At most one price a ``MARKET_PRICE_PUSH_INTERVAL`` per instrument, and only to
        the groups someone's socket is in: most instruments have no watcher at any moment."""
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
        watched = self._watched(due)
        if not watched:
            return
        layer = self.channel_layer
        # Bounded: the layer's connection pool is shared with this worker's own receive.
        limit = asyncio.Semaphore(PUSH_CONCURRENCY)

        async def push(instrument: str, price: float, ts: float) -> None:
            async with limit:
                await layer.group_send(
                    price_group(instrument),
                    {"type": "price.update", "instrument": instrument, "price": str(float(price)), "ts": ts},
                )

        async def send_all() -> None:
            results = await asyncio.gather(*(push(*tick) for tick in watched), return_exceptions=True)
            failed = sum(isinstance(result, Exception) for result in results)
            if failed:  # a live price is superseded by the next one: never worth failing the batch
                logger.warning("live price push failed", extra={"failed": failed})

        async_to_sync(send_all)()

    def _watched(self, due: list[Any]) -> list[Any]:
        """The ticks whose price group has members. channels_redis keeps a group as a sorted
        set in the same Redis: one script that checks them all instead of a group_send each
        (a pipeline of an EXISTS each cost five times as much at a few hundred instruments)."""
        group_key = getattr(self.channel_layer, "_group_key", None)
        if group_key is None:
            return due
        found = redis_script(_EXISTING_KEYS_LUA)(keys=[group_key(price_group(tick[0])) for tick in due])
        return [due[int(index) - 1] for index in found]
