"""The market listener: one broker tick stream over every instrument with running strategies or
armed stops, each frame forwarded as one ``ticks.batch`` message. The stream's thread does no
database work (it queues events); the main thread owns subscriptions, health checks and every
database write; a small event loop thread owns the channel layer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import redis
from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer, get_channel_layer
from django.conf import settings
from django.db import close_old_connections

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from brokers.adapters.base import FeedEvents, Tick, TickHandler, TickStream
from market import feed_alerts
from market.ticks import BATCH_TYPE, TICKS_CHANNEL
from monitoring.events import Event
from monitoring.services import Emission, emit_many, error_emission
from strategies import calendar

logger = logging.getLogger(__name__)

StreamFactory = Callable[[TickHandler, FeedEvents], TickStream]
STATUS_EVERY = 1.0  # seconds between health checks and status heartbeats
STATUS_TTL = 30  # a status older than this means the listener is gone
CALENDAR_CACHE_SECONDS = 30.0
DROP_REPORT_EVERY = 60.0  # seconds between B6 records of frames dropped on the way to the consumer
ERROR_REPORT_EVERY = 60.0  # seconds between L3 records of one kind of failure during an outage


class MarketListener:
    def __init__(
        self,
        *,
        stream_factory: StreamFactory,
        simulated_venue: bool,
        stale_seconds: float | None = None,
        stall_seconds: float | None = None,
        reconcile_seconds: float | None = None,
        channel_layer: BaseChannelLayer | None = None,
    ) -> None:
        self._simulated_venue = simulated_venue
        self._stale_seconds = stale_seconds or settings.MARKET_FEED_STALE_SECONDS
        self._stall_seconds = stall_seconds or settings.MARKET_FEED_STALL_SECONDS
        self._reconcile_seconds = reconcile_seconds or settings.MARKET_RECONCILE_SECONDS
        layer = channel_layer or get_channel_layer()
        if layer is None:
            raise RuntimeError("the market listener needs a channel layer (CHANNEL_LAYERS)")
        self._layer = layer
        self._redis = get_redis()
        self._stream = stream_factory(self.on_ticks, self)

        self._lock = threading.Lock()
        self._subscribed: set[str] = set()
        self._pending_first: set[str] = set()
        # Wall-clock receipt of each instrument's last tick (written by the stream thread).
        self._last_tick_at: dict[str, float] = {}
        self._last_frame_at = 0.0
        self._quiet_since = time.time()  # the stall clock restarts on (re)connect and (re)subscribe
        self._down_since: float | None = None
        self._restarting = False
        self._events: queue.Queue[Emission] = queue.Queue()
        # Alerts to open or resolve, recorded with the events by the main thread.
        self._alerts: queue.Queue[feed_alerts.StaleFeedAlert] = queue.Queue()
        self._frames = 0
        self._dropped = 0
        self._drop_reported_at = float("-inf")
        self._open_cache: dict[str, tuple[float, bool]] = {}
        self._error_reported_at: dict[str, float] = {}

        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, name="market-layer", daemon=True)

    # -- the stream thread -----------------------------------------------------------

    def on_ticks(self, batch: list[Tick]) -> None:
        received_at = time.time()
        ticks: list[list[Any]] = [[f"{tick.exchange}:{tick.symbol}", tick.price, tick.exchange_ts] for tick in batch]
        last_tick_at = self._last_tick_at
        for row in ticks:
            last_tick_at[row[0]] = received_at
        self._last_frame_at = received_at
        message: dict[str, Any] = {"type": BATCH_TYPE, "ticks": ticks, "received_at": received_at}
        if self._down_since is not None:
            with self._lock:
                down_since, self._down_since = self._down_since, None
                self._pending_first |= self._subscribed
            if down_since is not None:
                gap = round(received_at - down_since, 3)
                self._queue(Event.M4_PRICE_STREAM_RESTORED, f"Ticks flow again after {gap} s", {"gap_seconds": gap})
        if self._pending_first:
            with self._lock:
                first = self._pending_first.intersection(row[0] for row in ticks)
                self._pending_first -= first
            if first:
                message["first"] = sorted(first)
        self._frames += 1
        # Waited for, so frames reach the channel in the order they arrived (a whole-second
        # exchange timestamp cannot order two frames of the same second).
        future = asyncio.run_coroutine_threadsafe(self._layer.send(TICKS_CHANNEL, message), self._loop)
        try:
            future.result(timeout=5)
        except Exception as error:  # never raise into the stream: it would report every frame
            self._dropped += 1
            full = isinstance(error, ChannelFull)
            reason = "the tick consumer is behind" if full else f"the channel layer failed: {type(error).__name__}"
            logger.warning("frame dropped: %s", reason, extra={"ticks": len(ticks), "dropped": self._dropped})
            now = time.monotonic()
            if now - self._drop_reported_at >= DROP_REPORT_EVERY:  # one B6 per incident, not per frame
                self._drop_reported_at = now
                self._queue(Event.B6_PRICE_FEED_ERROR, f"Frames dropped: {reason}", {"dropped": self._dropped})

    def on_connected(self) -> None:
        logger.info("market feed connected")
        with self._lock:
            self._pending_first |= self._subscribed
        self._quiet_since = time.time()
        self._queue(Event.B5_PRICE_FEED_CONNECTED, "Price feed connected", {})

    def on_disconnected(self, reason: str) -> None:
        if self._restarting or reason == "stopped":
            return  # our own stop: a stall restart or the shutdown, recorded where it is decided
        self._mark_down(reason)

    def on_error(self, reason: str) -> None:
        self._queue(Event.B6_PRICE_FEED_ERROR, f"Price feed error: {reason}"[:500], {"reason": reason[:300]})
        self._report_error("broker", reason, "Broker price feed failed")

    # -- the main thread -------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        self._loop_thread.start()
        self._stream.start()
        pubsub = None
        next_reconcile = next_status = 0.0
        try:
            while not stop.is_set():
                if pubsub is None:
                    pubsub = self._follow_changes()
                    next_reconcile = 0.0  # whatever was published while we were not listening
                changed = self._changed_instruments(pubsub) if pubsub is not None else set()
                if pubsub is not None and changed is None:
                    pubsub = None
                    stop.wait(1.0)
                    continue
                now = time.monotonic()
                try:
                    if now >= next_reconcile:
                        self.reconcile()
                        next_reconcile = now + self._reconcile_seconds
                    elif changed:
                        self.recheck(changed)
                    if now >= next_status:
                        self.check_health()
                        next_status = now + STATUS_EVERY
                except redis.RedisError as error:
                    logger.exception("market listener: Redis unavailable")
                    self._report_error("redis", error, "Market listener: Redis unavailable")
                    stop.wait(1.0)
                self.record_events()
        finally:
            self._restarting = True
            self._stream.stop()
            if pubsub is not None:
                pubsub.close()
            with contextlib.suppress(redis.RedisError):
                self._redis.hset(redis_keys.feed_status(), mapping={"connected": "0", "stopped_at": str(time.time())})
            self.record_events()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop_thread.join(timeout=5)
            logger.info("market listener stopped", extra={"frames": self._frames, "dropped": self._dropped})

    def _follow_changes(self) -> Any:
        try:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            pubsub.subscribe(redis_keys.subscriptions_channel())
            return pubsub
        except redis.RedisError:
            logger.exception("market listener: cannot follow subscription changes")
            return None

    def _changed_instruments(self, pubsub: Any) -> set[str] | None:
        """Instruments published as changed in the next ~0.2 s; None if the connection broke."""
        changed: set[str] = set()
        try:
            message = pubsub.get_message(timeout=0.2)
            while message is not None:
                if message.get("type") == "message":
                    changed.add(str(message["data"]))
                message = pubsub.get_message(timeout=0)
        except redis.RedisError:
            logger.exception("market listener: subscription channel lost; reconnecting")
            return None
        return changed

    def reconcile(self) -> None:
        """Subscribe to exactly the instruments with running strategies or armed stops
        (Redis deletes a set when it empties, so a key that exists is a non-empty set)."""
        wanted = set()
        for pattern in (redis_keys.SYMBOL_STRATEGIES_PATTERN, redis_keys.STOP_LOSSES_PATTERN):
            for key in self._redis.scan_iter(match=pattern, count=1000):
                wanted.add(redis_keys.instrument_of_key(key))
        self._apply(wanted, scope=None)

    def recheck(self, instruments: Iterable[str]) -> None:
        instruments = set(instruments)
        pipe = self._redis.pipeline(transaction=False)
        ordered = sorted(instruments)
        for instrument in ordered:
            pipe.exists(redis_keys.symbol_strategies(instrument), redis_keys.stop_losses(instrument))
        wanted = {instrument for instrument, count in zip(ordered, pipe.execute(), strict=True) if count}
        self._apply(wanted, scope=instruments)

    def _apply(self, wanted: set[str], *, scope: set[str] | None) -> None:
        with self._lock:
            current = self._subscribed if scope is None else self._subscribed & scope
            added, removed = wanted - current, current - wanted
            self._subscribed = (self._subscribed | added) - removed
            self._pending_first |= added
        now = time.time()
        for instrument in added:
            self._last_tick_at.setdefault(instrument, now)  # a new subscription gets its grace
        for instrument in removed:
            self._last_tick_at.pop(instrument, None)
        if added:
            if not self._subscribed - added:  # nothing was expected to tick until now
                self._quiet_since = now
            self._stream.subscribe(_pairs(added))
            logger.info("market listener subscribed", extra={"instruments": sorted(added)[:50], "count": len(added)})
        if removed:
            self._stream.unsubscribe(_pairs(removed))
            logger.info("market listener unsubscribed", extra={"instruments": sorted(removed)[:50]})

    @property
    def subscribed(self) -> set[str]:
        with self._lock:
            return set(self._subscribed)

    def check_health(self) -> None:
        """Reconnect a silent stream; open / clear L4 for armed instruments without ticks;
        publish the feed's freshness for /healthz."""
        now = time.time()
        subscribed = sorted(self.subscribed)
        quiet_for = now - max(self._last_frame_at, self._quiet_since)
        if subscribed and quiet_for >= self._stall_seconds and any(self._is_open(i) for i in subscribed[:20]):
            if self._stream.connected:
                self._restart_stream(f"no ticks for {quiet_for:.1f} s")
            elif self._down_since is None:  # reconnecting by itself, with its own backoff
                self._mark_down(f"no ticks for {quiet_for:.1f} s")
        pipe = self._redis.pipeline(transaction=False)
        for instrument in subscribed:
            pipe.exists(redis_keys.stop_losses(instrument))
        armed = [i for i, exists in zip(subscribed, pipe.execute(), strict=True) if exists]
        stale_now = {
            instrument
            for instrument in armed
            if now - self._last_tick_at.get(instrument, now) >= self._stale_seconds and self._is_open(instrument)
        }
        alerted = {str(member) for member in self._redis.smembers(redis_keys.feed_stale())}
        opened, cleared = stale_now - alerted, alerted - stale_now
        if opened:
            self._redis.sadd(redis_keys.feed_stale(), *opened)
            self._alert(opened, now=now, cleared=False)
        if cleared:
            self._redis.srem(redis_keys.feed_stale(), *cleared)
            self._alert(cleared, now=now, cleared=True)
        status = {
            "updated_at": str(now),
            "connected": "1" if self._stream.connected and self._down_since is None else "0",
            "last_frame_at": str(self._last_frame_at),
            "subscribed": str(len(subscribed)),
            "armed": str(len(armed)),
            "stale": str(len(stale_now)),
            "frames": str(self._frames),
            "dropped": str(self._dropped),
        }
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(redis_keys.feed_status(), mapping=status)  # type: ignore[arg-type]  # redis-py's wide union
        pipe.expire(redis_keys.feed_status(), STATUS_TTL)
        pipe.execute()

    def _restart_stream(self, reason: str) -> None:
        """A connection can stay open and carry nothing (a stuck broker session): treat it
        as a disconnect and connect afresh, which also replays every subscription."""
        logger.warning("market feed silent: reconnecting", extra={"reason": reason})
        self._mark_down(reason)
        self._restarting = True
        try:
            self._stream.stop()
        finally:
            self._restarting = False
        self._quiet_since = time.time()
        self._stream.start()

    def _mark_down(self, reason: str) -> None:
        with self._lock:
            already = self._down_since is not None
            if not already:
                self._down_since = time.time()
        self._queue(Event.B6_PRICE_FEED_ERROR, f"Price feed error: {reason}"[:500], {"reason": reason[:300]})
        if not already:
            self._queue(Event.M3_PRICE_STREAM_DISCONNECTED, f"Price stream disconnected: {reason}"[:500], {})

    def _alert(self, instruments: set[str], *, now: float, cleared: bool) -> None:
        for alert in feed_alerts.stale_feed_alerts(
            self._redis,
            instruments,
            last_tick_at=self._last_tick_at,
            stale_seconds=self._stale_seconds,
            cleared=cleared,
        ):
            self._alerts.put(alert)

    def record_events(self) -> None:
        emissions = []
        while True:
            try:
                emissions.append(self._events.get_nowait())
            except queue.Empty:
                break
        alerts = []
        while True:
            try:
                alerts.append(self._alerts.get_nowait())
            except queue.Empty:
                break
        if not emissions and not alerts:
            return
        close_old_connections()
        try:
            if emissions:
                emit_many(emissions)
        except Exception:
            logger.exception(
                "market listener: events not recorded", extra={"events": [e.event.code for e in emissions]}
            )
        for instrument, text, payload, to_owners in alerts:
            try:
                feed_alerts.stale_feed_alert_record(instrument, text, payload, to_owners)
            except Exception:
                logger.exception("market listener: alert not recorded", extra={"instrument": instrument})

    def _report_error(self, source: str, error: BaseException | str, message: str) -> None:
        """L3, at most once a minute per kind: an outage must not write a row a second."""
        now = time.monotonic()
        if now - self._error_reported_at.get(message, float("-inf")) >= ERROR_REPORT_EVERY:
            self._error_reported_at[message] = now
            self._events.put(error_emission(source=source, error=error, message=message))

    def _queue(self, event: Event, message: str, payload: dict[str, Any]) -> None:
        self._events.put(Emission(event, message=message, payload=payload))

    def _is_open(self, instrument: str) -> bool:
        """Market hours of the instrument's venue (the SIM venue, always open, for the paper
        broker and the Kite simulator); a venue without a calendar counts as open."""
        venue = "SIM" if self._simulated_venue else instrument.partition(":")[0]
        cached = self._open_cache.get(venue)
        now = time.monotonic()
        if cached is not None and now - cached[0] < CALENDAR_CACHE_SECONDS:
            return cached[1]
        try:
            is_open = calendar.is_open(venue, datetime.now(UTC))
        except LookupError:
            is_open = True
        except Exception:
            logger.exception("market calendar unavailable")
            is_open = True
        self._open_cache[venue] = (now, is_open)
        return is_open


def _pairs(instruments: Iterable[str]) -> list[tuple[str, str]]:
    pairs = []
    for instrument in instruments:
        exchange, _, symbol = instrument.partition(":")
        pairs.append((exchange, symbol))
    return pairs
