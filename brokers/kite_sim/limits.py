"""Kite's limits as the simulator enforces them, from ``brokers.kite_limits``: request rates
per account in clock-second windows (429 past them, nothing processed), orders a minute and
a day, modifications per order, the circuit band and the stop-loss trigger rules. Each can
be turned off for a test about something else (``KiteSimulator.set_limits`` or
``POST /_sim/limits``)."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from http import HTTPStatus

from brokers.kite_limits import KITE_LIMITS, ORDERS, KiteLimits, bucket_of, per_second
from brokers.kite_sim.clock import IST
from brokers.kite_sim.errors import KiteError, order_error

RATE = "rate"  # requests a second per endpoint class
ORDERS_PER_MINUTE = "orders_per_minute"
ORDERS_PER_DAY = "orders_per_day"
MODIFICATIONS = "modifications"  # per order
CIRCUIT = "circuit"  # LIMIT and SL prices inside the day's circuit band
STOP_TRIGGERS = "stop_triggers"  # SL / SL-M triggers on the right side of the last price and the limit
NAMES = frozenset({RATE, ORDERS_PER_MINUTE, ORDERS_PER_DAY, MODIFICATIONS, CIRCUIT, STOP_TRIGGERS})


def too_many_requests() -> KiteError:
    """Kite's answer past a rate limit: HTTP 429 with a NetworkException body."""
    return KiteError("NetworkException", "Too many requests", HTTPStatus.TOO_MANY_REQUESTS)


class Limits:
    def __init__(self, table: KiteLimits = KITE_LIMITS, *, enabled: bool = True) -> None:
        self.table = table
        self._off: set[str] = set() if enabled else set(NAMES)
        # (api_key, bucket) -> (window, requests counted in it); one window each, so it never grows.
        self._windows: dict[tuple[str, str], tuple[object, int]] = {}
        self._lock = threading.Lock()

    def on(self, name: str) -> bool:
        return name not in self._off

    def set(self, **flags: bool) -> dict[str, bool]:
        unknown = set(flags) - NAMES
        if unknown:
            raise ValueError(f"unknown limits {sorted(unknown)}; known: {sorted(NAMES)}")
        with self._lock:
            for name, enabled in flags.items():
                if enabled:
                    self._off.discard(name)
                else:
                    self._off.add(name)
        return self.state()

    def state(self) -> dict[str, bool]:
        return {name: self.on(name) for name in sorted(NAMES)}

    def take(self, api_key: str, endpoint: str, now: float | None = None) -> None:
        """Count one request of ``api_key`` to ``endpoint``, or raise Kite's refusal (and count
        nothing) if a limit is reached: 429 per second or minute, OrderException for the day."""
        now = time.time() if now is None else now
        bucket = bucket_of(endpoint)
        windows: list[tuple[tuple[str, str], object, int]] = []
        if self.on(RATE):
            windows.append(((api_key, bucket), int(now), per_second(bucket, self.table)))
        if bucket == ORDERS and self.on(ORDERS_PER_MINUTE):
            windows.append(((api_key, "minute"), int(now) // 60, self.table.orders_per_minute))
        day_window = None
        if bucket == ORDERS and self.on(ORDERS_PER_DAY):
            day_window = ((api_key, "day"), datetime.fromtimestamp(now, IST).date(), self.table.orders_per_day)
        with self._lock:
            for key, window, limit in windows:
                if self._count(key, window) >= limit:
                    raise too_many_requests()
            if day_window is not None and self._count(day_window[0], day_window[1]) >= day_window[2]:
                raise order_error(
                    f"Maximum allowed order requests exceeded: {day_window[2]} orders a day across segments."
                )
            for key, window, _ in [*windows, *([day_window] if day_window else [])]:
                self._windows[key] = (window, self._count(key, window) + 1)

    def _count(self, key: tuple[str, str], window: object) -> int:
        seen, count = self._windows.get(key, (None, 0))
        return count if seen == window else 0
