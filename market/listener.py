"""The market listener: broker tick streams over every instrument with running strategies or
armed stops (as many connections as they need, ``market.feed_pool``), each frame forwarded as
one ``ticks.batch`` message. The streams' threads do no database work (they queue events); the
main thread owns subscriptions, health checks and every database write; a small event loop
thread owns the channel layer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import redis
from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer, get_channel_layer
from django.conf import settings
from django.db import close_old_connections

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from brokers.adapters.base import Tick
from market import feed_alerts
from market.feed_pool import FeedConnection, FeedPool, StreamFactory
from market.hours import MarketHours
from market.ticks import BATCH_TYPE, TICKS_CHANNEL
from monitoring.events import Event
from monitoring.services import Emission, emit_many, error_emission

logger = logging.getLogger(__name__)
T = TypeVar("T")

STATUS_EVERY = 1.0  # seconds between health checks and status heartbeats
STATUS_TTL = 30  # a status older than this means the listener is gone
DROP_REPORT_EVERY = 60.0  # seconds between B6 records of frames dropped on the way to the consumer
ERROR_REPORT_EVERY = 60.0  # seconds between L3 records of one kind of failure during an outage


class MarketListener:
    def __init__(
        self,
        *,
        stream_factory: StreamFactory | Sequence[StreamFactory],
        simulated_venue: bool,
        stale_seconds: float | None = None,
        stall_seconds: float | None = None,
        reconcile_seconds: float | None = None,
        channel_layer: BaseChannelLayer | None = None,
        per_connection: int | None = None,
        connections_per_key: int | None = None,
    ) -> None:
        """``stream_factory``: one per feed account (API key), each opening one connection per call."""
        self._hours = MarketHours(simulated_venue=simulated_venue)
        self._stale_seconds = stale_seconds or settings.MARKET_FEED_STALE_SECONDS
        self._stall_seconds = stall_seconds or settings.MARKET_FEED_STALL_SECONDS
        self._reconcile_seconds = reconcile_seconds or settings.MARKET_RECONCILE_SECONDS
        layer = channel_layer or get_channel_layer()
        if layer is None:
            raise RuntimeError("the market listener needs a channel layer (CHANNEL_LAYERS)")
        self._layer = layer
        self._redis = get_redis()
        self._factories = [stream_factory] if callable(stream_factory) else list(stream_factory)
        self._pool = FeedPool(
            per_connection=per_connection or settings.MARKET_FEED_INSTRUMENTS_PER_CONNECTION,
            accounts=len(self._factories),
            connections_per_account=connections_per_key or settings.MARKET_FEED_CONNECTIONS_PER_KEY,
        )
        self._lock = threading.Lock()
        self._running = self._stopping = False
        self._connections: list[FeedConnection] = []
        self._open_connection()  # the first at once: the feed reports connected (B5) before anything is wanted
        self._wanted: set[str] = set()
        self._armed: set[str] = set()  # the wanted instruments with armed stops
        self._uncarried: set[str] = set()
        self._pending_first: set[str] = set()
        # Wall-clock receipt of each instrument's last tick (written by the stream threads).
        self._last_tick_at: dict[str, float] = {}
        self._last_frame_at = 0.0
        self._events: queue.Queue[Emission] = queue.Queue()
        # Alerts to open or resolve, recorded with the events by the main thread.
        self._alerts: queue.Queue[feed_alerts.FeedAlert] = queue.Queue()
        self._frames = 0
        self._dropped = 0
        self._drop_reported_at = float("-inf")
        self._error_reported_at: dict[str, float] = {}

        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, name="market-layer", daemon=True)

    # -- the stream threads ----------------------------------------------------------

    def on_ticks(self, batch: list[Tick], connection: FeedConnection | None = None) -> None:
        connection = connection or self._connections[0]
        received_at = time.time()
        ticks: list[list[Any]] = [[f"{tick.exchange}:{tick.symbol}", tick.price, tick.exchange_ts] for tick in batch]
        last_tick_at = self._last_tick_at
        for row in ticks:
            last_tick_at[row[0]] = received_at
        self._last_frame_at = connection.last_frame_at = received_at
        message: dict[str, Any] = {"type": BATCH_TYPE, "ticks": ticks, "received_at": received_at}
        if connection.down_since is not None and connection.restored(received_at):
            with self._lock:
                self._pending_first |= self._pool.members[connection.index]
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

    def on_connected(self, connection: FeedConnection | None = None) -> None:
        connection = connection or self._connections[0]
        logger.info("market feed connected", extra={"connection": connection.index + 1})
        with self._lock:
            self._pending_first |= self._pool.members[connection.index]
        connection.quiet_since = time.time()
        label = f"Price feed connected ({connection.label})"
        self._queue(Event.B5_PRICE_FEED_CONNECTED, label, {"connection": connection.index + 1})

    def on_disconnected(self, reason: str, connection: FeedConnection | None = None) -> None:
        connection = connection or self._connections[0]
        if not self._stopping and reason != "stopped":  # our own stop, recorded where it is decided
            connection.mark_down(reason)

    def on_error(self, reason: str, connection: FeedConnection | None = None) -> None:
        self._queue(Event.B6_PRICE_FEED_ERROR, f"Price feed error: {reason}"[:500], {"reason": reason[:300]})
        self._report_error("broker", reason, "Broker price feed failed")

    # -- the main thread -------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        self._loop_thread.start()
        self._running = True
        for connection in list(self._connections):
            connection.stream.start()
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
            self._stopping = True
            for connection in self._connections:
                connection.stream.stop()
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
        running, armed = (
            {redis_keys.instrument_of_key(key) for key in self._redis.scan_iter(match=pattern, count=1000)}
            for pattern in (redis_keys.SYMBOL_STRATEGIES_PATTERN, redis_keys.STOP_LOSSES_PATTERN)
        )
        self._apply(running | armed, armed, scope=None)

    def recheck(self, instruments: Iterable[str]) -> None:
        instruments = set(instruments)
        pipe = self._redis.pipeline(transaction=False)
        ordered = sorted(instruments)
        for instrument in ordered:
            pipe.exists(redis_keys.symbol_strategies(instrument))
            pipe.exists(redis_keys.stop_losses(instrument))
        found = pipe.execute()
        running = {i for i, exists in zip(ordered, found[0::2], strict=True) if exists}
        armed = {i for i, exists in zip(ordered, found[1::2], strict=True) if exists}
        self._apply(running | armed, armed, scope=instruments)

    def _apply(self, wanted: set[str], armed: set[str], *, scope: set[str] | None) -> None:
        """Record what is wanted (all of it, or within ``scope``) and move the connections to
        carry it: unsubscribing first frees room for what an over-full pool carries instead."""
        if scope is None:
            self._wanted, self._armed = set(wanted), set(armed)
        else:
            self._wanted = (self._wanted - scope) | wanted
            self._armed = (self._armed - scope) | armed
        with self._lock:
            change = self._pool.assign(self._wanted, self._armed)
            added, removed = change.added, change.removed
            self._pending_first = (self._pending_first | added) - removed
            fresh = {index for index in change.subscribe if self._pool.members[index] == change.subscribe[index]}
        now = time.time()
        for instrument in added:
            self._last_tick_at.setdefault(instrument, now)  # a new subscription gets its grace
        for instrument in removed:
            self._last_tick_at.pop(instrument, None)
        while len(self._connections) < len(self._pool.members):
            self._open_connection()
        for index, instruments in change.unsubscribe.items():
            self._connections[index].stream.unsubscribe(_pairs(instruments))
            logger.info("market listener unsubscribed", extra=_logged(instruments, index))
        for index, instruments in change.subscribe.items():
            if index in fresh:  # nothing was expected to tick on it until now
                self._connections[index].quiet_since = now
            self._connections[index].stream.subscribe(_pairs(instruments))
            logger.info("market listener subscribed", extra=_logged(instruments, index))
        self._over_capacity(change.uncarried)

    def _open_connection(self) -> None:
        index = len(self._connections)
        factory = self._factories[self._pool.account_of(index)]
        connection = FeedConnection(index=index, factory=factory, listener=self, report=self._queue)
        self._connections.append(connection)
        if self._running:
            connection.stream.start()
        if index:
            logger.info("market listener opened another connection", extra={"connection": index + 1})

    def _over_capacity(self, uncarried: set[str]) -> None:
        """One L4 while the feed accounts cannot carry everything wanted, cleared when they can."""
        was, self._uncarried = self._uncarried, uncarried
        if bool(was) == bool(uncarried):
            if uncarried != was:
                logger.warning("market feed over capacity", extra={"uncarried": len(uncarried)})
            return
        self._alerts.put(
            feed_alerts.capacity_alert(
                uncarried=uncarried or was,
                armed=self._armed,
                wanted=len(self._wanted),
                capacity=self._pool.capacity,
                cleared=not uncarried,
            )
        )

    @property
    def subscribed(self) -> set[str]:
        with self._lock:
            return self._pool.carried

    @property
    def connections(self) -> list[FeedConnection]:
        return list(self._connections)

    def check_health(self) -> None:
        """Reconnect each silent connection; open / clear L4 for armed instruments without
        ticks; publish the feed's freshness for /healthz (armed stops no connection carries
        count as stale: nothing prices them)."""
        now = time.time()
        with self._lock:
            carried_by = [sorted(members) for members in self._pool.members]
        for connection, carried in zip(self._connections, carried_by, strict=False):
            if carried and any(self._hours.is_open(i) for i in carried[:20]):
                connection.check_stall(now, self._stall_seconds)
        subscribed = sorted(self.subscribed)
        pipe = self._redis.pipeline(transaction=False)
        for instrument in subscribed:
            pipe.exists(redis_keys.stop_losses(instrument))
        armed = [i for i, exists in zip(subscribed, pipe.execute(), strict=True) if exists]
        stale_now = {
            instrument
            for instrument in armed
            if now - self._last_tick_at.get(instrument, now) >= self._stale_seconds and self._hours.is_open(instrument)
        }
        alerted = {str(member) for member in self._redis.smembers(redis_keys.feed_stale())}
        opened, cleared = stale_now - alerted, alerted - stale_now
        if opened:
            self._redis.sadd(redis_keys.feed_stale(), *opened)
            self._alert(opened, now=now, cleared=False)
        if cleared:
            self._redis.srem(redis_keys.feed_stale(), *cleared)
            self._alert(cleared, now=now, cleared=True)
        unpriced = len(self._uncarried & self._armed)
        connected = all(c.healthy for c in self._connections)
        status = {
            "updated_at": str(now),
            "connected": "1" if connected else "0",
            "connections": str(len(self._connections)),
            "last_frame_at": str(self._last_frame_at),
            "subscribed": str(len(subscribed)),
            "uncarried": str(len(self._uncarried)),
            "armed": str(len(armed) + unpriced),
            "stale": str(len(stale_now) + unpriced),
            "frames": str(self._frames),
            "dropped": str(self._dropped),
        }
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(redis_keys.feed_status(), mapping=status)  # type: ignore[arg-type]  # redis-py's wide union
        pipe.expire(redis_keys.feed_status(), STATUS_TTL)
        pipe.execute()

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
        emissions, alerts = _drain(self._events), _drain(self._alerts)
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
        for alert in alerts:
            try:
                feed_alerts.feed_alert_record(alert)
            except Exception:
                logger.exception("market listener: alert not recorded", extra={"alert": alert.kind, "key": alert.key})

    def _report_error(self, source: str, error: BaseException | str, message: str) -> None:
        """L3, at most once a minute per kind: an outage must not write a row a second."""
        now = time.monotonic()
        if now - self._error_reported_at.get(message, float("-inf")) >= ERROR_REPORT_EVERY:
            self._error_reported_at[message] = now
            self._events.put(error_emission(source=source, error=error, message=message))

    def _queue(self, event: Event, message: str, payload: dict[str, Any]) -> None:
        self._events.put(Emission(event, message=message, payload=payload))


def _pairs(instruments: Iterable[str]) -> list[tuple[str, str]]:
    return [(exchange, symbol) for exchange, _, symbol in (i.partition(":") for i in instruments)]


def _logged(instruments: set[str], index: int) -> dict[str, Any]:
    return {"instruments": sorted(instruments)[:50], "count": len(instruments), "connection": index + 1}


def _drain(pending: queue.Queue[T]) -> list[T]:
    items = []
    while True:
        try:
            items.append(pending.get_nowait())
        except queue.Empty:
            return items
