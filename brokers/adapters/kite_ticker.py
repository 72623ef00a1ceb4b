"""``KiteTickStream``: Kite's tick WebSocket as a self-reconnecting ``TickStream`` over
``websocket-client``, one batch of ``Tick`` per received frame (packets decoded by
``kite_packets``), order updates and errors from the text channel reported."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode

import websocket

from brokers.adapters.base import FeedEvents, Instrument, Tick, TickHandler
from brokers.adapters.kite_packets import MODE_FULL, MODE_LTP, MODE_QUOTE, parse_frame_prices
from brokers.exceptions import BrokerError

logger = logging.getLogger(__name__)


def reconnect_delay(attempt: int, *, initial: float, cap: float) -> float:
    """Exponential backoff, capped, with jitter so that many listeners cut off together
    (a broker restart) do not all knock again in the same instant."""
    return min(cap, initial * 2.0**attempt) * random.uniform(0.5, 1.0)


InstrumentLoader = Callable[[str], list[Instrument]]
OrderUpdateHandler = Callable[[dict[str, Any]], None]


class KiteTickStream:
    """A ``TickStream`` on Kite's WebSocket. One daemon thread runs the connection and
    reconnects with capped exponential backoff plus jitter until ``stop``; every
    subscription is remembered and replayed on each (re)connect."""

    def __init__(
        self,
        *,
        api_key: str,
        access_token: str,
        ws_root: str,
        instruments: InstrumentLoader,
        on_ticks: TickHandler,
        events: FeedEvents | None = None,
        on_order_update: OrderUpdateHandler | None = None,
        mode: str = MODE_FULL,  # full is the only equity mode that carries the exchange timestamp
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        ping_interval: float = 5.0,
        ping_timeout: float = 4.0,
    ) -> None:
        if mode not in (MODE_LTP, MODE_QUOTE, MODE_FULL):
            raise ValueError(f"unknown Kite tick mode {mode!r}")
        self._url = f"{ws_root}?{urlencode({'api_key': api_key, 'access_token': access_token})}"
        # Too short a "secret" would redact ordinary letters (test tokens); real ones are 32 characters.
        self._secrets = tuple(s for s in (access_token,) if len(s) >= 8)
        self._load_instruments = instruments
        self._on_ticks = on_ticks
        self._events = events
        self._on_order_update = on_order_update
        self._mode = mode
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout

        self._lock = threading.Lock()
        self._resolve_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._app: websocket.WebSocketApp | None = None
        self._sock: websocket.WebSocket | None = None
        self._connected = False
        self._opened_at: float | None = None
        self._last_error = ""
        self._wanted: set[tuple[str, str]] = set()
        # Whose ticks are delivered: replaced whole on every change, so the per-frame hot path
        # reads it without taking the lock.
        self._delivered: dict[int, tuple[str, str]] = {}
        self._token_of: dict[tuple[str, str], int] = {}
        self._key_of: dict[int, tuple[str, str]] = {}
        self._loaded_exchanges: set[str] = set()

    # -- TickStream ----------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="kite-ticker", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            app, thread = self._app, self._thread
        if app is not None:
            self._close(app)
        if thread is not None:
            thread.join(timeout=10)
            with self._lock:
                self._thread = None

    def subscribe(self, instruments: Iterable[tuple[str, str]]) -> None:
        keys = {(exchange.upper(), symbol.upper()) for exchange, symbol in instruments}
        with self._lock:
            self._wanted |= keys
        tokens = self._resolve(keys)
        with self._lock:
            self._delivered = self._deliverable()
        if self._connected:
            self._send_subscription(tokens)

    def unsubscribe(self, instruments: Iterable[tuple[str, str]]) -> None:
        keys = {(exchange.upper(), symbol.upper()) for exchange, symbol in instruments}
        with self._lock:
            self._wanted -= keys
            tokens = [self._token_of[key] for key in keys if key in self._token_of]
            self._delivered = self._deliverable()
        if tokens and self._connected:
            self._send({"a": "unsubscribe", "v": tokens})

    # -- instruments ---------------------------------------------------------

    def _deliverable(self) -> dict[int, tuple[str, str]]:
        """Token -> (exchange, symbol) of every wanted, resolved instrument; call with the lock held."""
        return {self._token_of[key]: key for key in self._wanted if key in self._token_of}

    def _resolve(self, keys: Iterable[tuple[str, str]]) -> list[int]:
        """Instrument tokens for (exchange, symbol) keys, loading each exchange's list once.
        A key that cannot be resolved now stays wanted and is tried again on reconnect."""
        keys = set(keys)
        with self._resolve_lock:
            for exchange in sorted({exchange for exchange, _ in keys} - self._loaded_exchanges):
                try:
                    listed = self._load_instruments(exchange)
                except BrokerError as exc:
                    self._report_error(f"instrument list for {exchange} unavailable: {exc.message}")
                    continue
                with self._lock:
                    for instrument in listed:
                        key = (instrument.exchange.upper(), instrument.symbol.upper())
                        self._token_of[key] = instrument.instrument_token
                        self._key_of[instrument.instrument_token] = key
                    self._loaded_exchanges.add(exchange)
            with self._lock:
                unknown = sorted(key for key in keys if key not in self._token_of and key[0] in self._loaded_exchanges)
                tokens = [self._token_of[key] for key in keys if key in self._token_of]
        if unknown:
            self._report_error(f"unknown instruments: {', '.join(':'.join(key) for key in unknown)}")
        return sorted(tokens)

    # -- connection loop -----------------------------------------------------

    def _run(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            app = websocket.WebSocketApp(
                self._url,
                header={"X-Kite-Version": "3"},
                on_open=self._handle_open,
                on_message=self._handle_message,
                on_error=self._handle_error,
            )
            with self._lock:
                if self._stopping.is_set():
                    break
                self._app = app
                self._opened_at = None
                self._last_error = ""
            try:
                app.run_forever(ping_interval=self._ping_interval, ping_timeout=self._ping_timeout, reconnect=0)
            except Exception as exc:  # run_forever raising must never kill the stream
                self._last_error = self._redact(f"{type(exc).__name__}: {exc}")
            finally:
                # websocket-client skips closing the TCP socket once a close frame was exchanged
                # (its close() returns early when no longer "connected"): close it here.
                with self._lock:
                    sock, self._sock = self._sock, None
                if sock is not None:
                    sock.shutdown()  # type: ignore[no-untyped-call]  # websocket-client leaves it untyped
            with self._lock:
                self._app = None
                self._connected = False
                opened_at = self._opened_at
                reason = self._last_error or ("stopped" if self._stopping.is_set() else "closed by the server")
            if opened_at is not None:
                logger.warning("kite ticker: disconnected: %s", reason)
                self._notify("on_disconnected", reason)
                # A connection that held for a while resets the backoff; one that drops at once does not.
                if time.monotonic() - opened_at >= 10:
                    attempt = 0
            else:
                self._report_error(f"connect failed: {reason}")
            if self._stopping.is_set():
                break
            delay = reconnect_delay(attempt, initial=self._backoff_initial, cap=self._backoff_max)
            attempt = min(attempt + 1, 30)
            self._stopping.wait(delay)

    def _handle_open(self, app: websocket.WebSocketApp) -> None:
        if self._stopping.is_set():
            self._close(app)
            return
        with self._lock:
            self._connected = True
            self._opened_at = time.monotonic()
            self._sock = app.sock
            wanted = set(self._wanted)
        logger.info("kite ticker: connected")
        self._notify("on_connected")
        tokens = self._resolve(wanted)
        with self._lock:
            self._delivered = self._deliverable()
        self._send_subscription(tokens)

    def _handle_error(self, app: websocket.WebSocketApp, error: object) -> None:
        self._last_error = self._redact(f"{type(error).__name__}: {error}")

    def _handle_message(self, app: websocket.WebSocketApp, message: str | bytes) -> None:
        if isinstance(message, str):
            self._handle_text(message)
            return
        received_at = time.time()
        delivered = self._delivered
        batch = [
            Tick(
                exchange=delivered[token][0],
                symbol=delivered[token][1],
                price=price,
                exchange_ts=float(timestamp) if timestamp else received_at,
                instrument_token=token,
            )
            for token, price, timestamp in parse_frame_prices(message)
            # A frame in flight when an unsubscribe was sent may still carry the old instrument.
            if token in delivered
        ]
        if not batch:
            return
        try:
            self._on_ticks(batch)
        except Exception:
            logger.exception("kite ticker: tick handler failed")
            self._report_error("tick handler failed")

    def _handle_text(self, message: str) -> None:
        try:
            payload = json.loads(message)
        except ValueError:
            logger.warning("kite ticker: unparseable text message")
            return
        if not isinstance(payload, dict):
            return
        kind = payload.get("type")
        data = payload.get("data")
        if kind == "order" and isinstance(data, dict):
            logger.info(
                "kite ticker: order update %s %s tag=%s", data.get("order_id"), data.get("status"), data.get("tag")
            )
            if self._on_order_update is not None:
                try:
                    self._on_order_update(data)
                except Exception:
                    logger.exception("kite ticker: order update handler failed")
        elif kind == "error":
            self._report_error(f"broker error: {self._redact(str(data))}")
        else:
            logger.info("kite ticker: %s message: %s", kind, self._redact(str(data))[:500])

    # -- sending -------------------------------------------------------------

    @staticmethod
    def _close(app: websocket.WebSocketApp) -> None:
        """Start the closing handshake and let the connection thread finish it: its reader sees
        the server's close frame (``WebSocketApp.close`` would race that reader for it and then
        sit out its close timeout)."""
        app.keep_running = False
        sock = app.sock
        if sock is not None and sock.connected:
            try:
                sock.send_close()
            except Exception:  # already broken: the reader is about to notice anyway
                sock.shutdown()  # type: ignore[no-untyped-call]  # websocket-client leaves it untyped

    def _send_subscription(self, tokens: list[int]) -> None:
        if tokens:
            self._send({"a": "subscribe", "v": tokens})
            self._send({"a": "mode", "v": [self._mode, tokens]})

    def _send(self, message: dict[str, Any]) -> None:
        with self._lock:
            app = self._app
        if app is None or not self._connected:
            return  # remembered in _wanted; replayed by _handle_open on the next connection
        try:
            app.send(json.dumps(message))
        except Exception as exc:
            # The connection is going away; the loop reconnects and replays every subscription.
            self._report_error(self._redact(f"send failed: {type(exc).__name__}: {exc}"))

    def _report_error(self, reason: str) -> None:
        logger.warning("kite ticker: %s", reason)
        self._notify("on_error", reason)

    def _notify(self, event: str, *args: str) -> None:
        if self._events is None:
            return
        try:
            getattr(self._events, event)(*args)
        except Exception:
            logger.exception("kite ticker: feed event handler %s failed", event)

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text
