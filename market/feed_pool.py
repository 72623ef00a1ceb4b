"""The listener's tick connections. A broker carries a bounded number of instruments on one
connection and a bounded number of connections per API key (Kite: 3,000 and 3), so the wanted
instruments are spread over as many connections as they need; what the feed accounts cannot
carry at all is left out, armed stops last."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from brokers.adapters.base import FeedEvents, Tick, TickHandler, TickStream
from monitoring.events import Event

if TYPE_CHECKING:
    from market.listener import MarketListener

logger = logging.getLogger(__name__)

StreamFactory = Callable[[TickHandler, FeedEvents], TickStream]
Report = Callable[[Event, str, dict[str, Any]], None]  # queues an event for the listener's main thread


class FeedConnection:
    """One tick connection of the pool: its own stream and its own health clocks, so that
    a connection that drops or goes silent reconnects (M3/M4) without touching the others.
    It is the stream's ``FeedEvents`` and tick handler, telling the listener which it is."""

    def __init__(self, *, index: int, factory: StreamFactory, listener: MarketListener, report: Report) -> None:
        self.index = index
        self.last_frame_at = 0.0
        self.quiet_since = time.time()  # the stall clock restarts on (re)connect and first subscription
        self.down_since: float | None = None
        self._restarting = False
        self._lock = threading.Lock()
        self._listener = listener
        self._report = report
        self.stream = factory(self.on_ticks, self)

    @property
    def label(self) -> str:
        return f"connection {self.index + 1}"

    def on_ticks(self, batch: list[Tick]) -> None:
        self._listener.on_ticks(batch, self)

    def on_connected(self) -> None:
        self._listener.on_connected(self)

    def on_disconnected(self, reason: str) -> None:
        if not self._restarting:  # a stall restart is recorded where it is decided
            self._listener.on_disconnected(reason, self)

    def on_error(self, reason: str) -> None:
        self._listener.on_error(reason, self)

    @property
    def healthy(self) -> bool:
        return self.stream.connected and self.down_since is None

    def check_stall(self, now: float, stall_seconds: float) -> None:
        """A connection can stay open and carry nothing (a stuck broker session): treat it
        as a disconnect and connect afresh, which also replays its subscriptions. Called only
        while it carries instruments whose market is open."""
        quiet_for = now - max(self.last_frame_at, self.quiet_since)
        if quiet_for < stall_seconds:
            return
        reason = f"no ticks for {quiet_for:.1f} s"
        if not self.stream.connected:
            if self.down_since is None:  # reconnecting by itself, with its own backoff
                self.mark_down(reason)
            return
        logger.warning("market feed silent: reconnecting", extra={"reason": reason, "connection": self.index + 1})
        self.mark_down(reason)
        self._restarting = True
        try:
            self.stream.stop()
        finally:
            self._restarting = False
        self.quiet_since = time.time()
        self.stream.start()

    def mark_down(self, reason: str) -> None:
        """B6 for each report, M3 once per outage of this connection."""
        with self._lock:
            already = self.down_since is not None
            if not already:
                self.down_since = time.time()
        where = {"connection": self.index + 1}
        self._report(
            Event.B6_PRICE_FEED_ERROR,
            f"Price feed error ({self.label}): {reason}"[:500],
            {"reason": reason[:300], **where},
        )
        if not already:
            self._report(
                Event.M3_PRICE_STREAM_DISCONNECTED, f"Price stream disconnected ({self.label}): {reason}"[:500], where
            )

    def restored(self, received_at: float) -> bool:
        """Ticks again after an outage: M4 once (True), with the gap."""
        with self._lock:
            down_since, self.down_since = self.down_since, None
        if down_since is None:
            return False
        gap = round(received_at - down_since, 3)
        message = f"Ticks flow again on {self.label} after {gap} s"
        self._report(Event.M4_PRICE_STREAM_RESTORED, message, {"gap_seconds": gap, "connection": self.index + 1})
        return True


@dataclass
class Assignment:
    """What one ``FeedPool.assign`` changed: instruments to subscribe and to unsubscribe by
    connection index, and the wanted instruments no connection carries."""

    subscribe: dict[int, set[str]] = field(default_factory=dict)
    unsubscribe: dict[int, set[str]] = field(default_factory=dict)
    uncarried: set[str] = field(default_factory=set)

    @property
    def added(self) -> set[str]:
        return set().union(*self.subscribe.values())

    @property
    def removed(self) -> set[str]:
        return set().union(*self.unsubscribe.values()) - self.added


class FeedPool:
    """Which connection carries which instrument. Sticky: an instrument stays on its connection
    while it is wanted (moving it would cost a gap in its ticks); a new one goes to the least
    loaded connection with room, and a connection is opened only when every open one is full.
    Over capacity, instruments with armed stops are carried first, then those already carried."""

    def __init__(self, *, per_connection: int, accounts: int, connections_per_account: int) -> None:
        if per_connection < 1 or accounts < 1 or connections_per_account < 1:
            raise ValueError("a feed pool needs at least one account, one connection and one instrument each")
        self.per_connection = per_connection
        self.max_connections = accounts * connections_per_account
        self.connections_per_account = connections_per_account
        # By connection index, in the order they were opened; the first is always open.
        self.members: list[set[str]] = [set()]
        self._carrier: dict[str, int] = {}

    @property
    def capacity(self) -> int:
        return self.per_connection * self.max_connections

    @property
    def carried(self) -> set[str]:
        return set(self._carrier)

    def account_of(self, index: int) -> int:
        """The feed account a connection belongs to: each account's connections side by side."""
        return index // self.connections_per_account

    def assign(self, wanted: set[str], armed: set[str]) -> Assignment:
        """Carry ``wanted`` as far as capacity allows (``armed``: the wanted instruments with
        armed stops, carried first); the change is returned for the streams to apply."""
        if len(wanted) <= self.capacity:
            chosen = wanted
        else:
            carrier = self._carrier
            ranked = sorted(wanted, key=lambda i: (i not in armed, i not in carrier, i))
            chosen = set(ranked[: self.capacity])
        change = Assignment(uncarried=wanted - chosen)
        for instrument in self._carrier.keys() - chosen:
            index = self._carrier.pop(instrument)
            self.members[index].discard(instrument)
            change.unsubscribe.setdefault(index, set()).add(instrument)
        for instrument in sorted(chosen - self._carrier.keys()):
            index = self._room()
            self._carrier[instrument] = index
            self.members[index].add(instrument)
            change.subscribe.setdefault(index, set()).add(instrument)
        return change

    def _room(self) -> int:
        """The least loaded open connection with room, or a new one when all are full (the
        caller never asks for more than the capacity, so a new one is always allowed)."""
        best = None
        for index, members in enumerate(self.members):
            if len(members) < self.per_connection and (best is None or len(members) < len(self.members[best])):
                best = index
        if best is None:
            self.members.append(set())
            best = len(self.members) - 1
        return best
