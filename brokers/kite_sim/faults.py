"""Fault injection: what can go wrong between a client and Kite, armed one-shot, N times or until
cleared, optionally for one account and one REST operation; REST faults are taken by the request
that matches them, ticker faults act on the WebSocket side."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

ANY_ENDPOINT = "*"

# The REST operations a fault can target, named after the official client's methods.
ENDPOINTS = frozenset(
    {
        ANY_ENDPOINT,
        "generate_session",
        "invalidate_access_token",
        "profile",
        "margins",
        "place_order",
        "modify_order",
        "cancel_order",
        "orders",
        "order_history",
        "trades",
        "order_trades",
        "positions",
        "quote",
        "ohlc",
        "ltp",
        "instruments",
    }
)


class FaultKind(StrEnum):
    DROP_RESPONSE = "drop_response"  # processed (an order IS created), then the connection closes unanswered
    RATE_LIMIT = "rate_limit"  # HTTP 429 NetworkException "Too many requests"; not processed
    SERVER_ERROR = "server_error"  # HTTP 5xx (503 NetworkException unless `status` says otherwise); not processed
    TOKEN_EXPIRED = "token_expired"  # noqa: S105 - HTTP 403 TokenException; not processed
    ERROR = "error"  # any Kite error envelope from `status`, `error_type`, `message`; not processed
    DELAY = "delay"  # processed normally, answered after `seconds` (client timeouts)
    # What Kite's OMS does in practice on a margin shortfall: the order is accepted (order_id
    # returned), the RMS then REJECTs it with an "Insufficient funds. Required margin is ..." message.
    MARGIN = "margin"
    # The documented alternative: HTTP 400 MarginException at placement, no order created.
    MARGIN_EXCEPTION = "margin_exception"
    REJECT = "reject"  # order accepted, then REJECTED with `message` as status_message (RMS, circuit limits...)
    # Only `quantity` fills (default half) and the exchange cancels the rest `seconds` later, as it
    # does a market order's unfilled rest: the order ends CANCELLED with a filled_quantity.
    PARTIAL_FILL = "partial_fill"
    FEED_SILENT = (
        "feed_silent"  # ticker sends nothing (no ticks, heartbeats, order updates) for `seconds`, 0 = until cleared
    )
    FEED_DISCONNECT = "feed_disconnect"  # ticker closes every client connection, once, when set


ORDER_FAULTS = frozenset(
    {FaultKind.MARGIN, FaultKind.MARGIN_EXCEPTION, FaultKind.REJECT, FaultKind.DROP_RESPONSE, FaultKind.PARTIAL_FILL}
)
FEED_FAULTS = frozenset({FaultKind.FEED_SILENT, FaultKind.FEED_DISCONNECT})
SERVER_ERROR_TYPES = {500: "GeneralException", 502: "DataException", 503: "NetworkException", 504: "NetworkException"}


@dataclass
class Fault:
    kind: FaultKind
    endpoint: str = ""  # "" = the kind's default: place_order for order faults, any endpoint otherwise
    api_key: str | None = None  # only this account's requests; None = everyone's
    times: int | None = 1  # None = until cleared
    status: int | None = None
    error_type: str | None = None
    message: str | None = None
    seconds: float = 0.0
    quantity: int | None = None  # partial_fill: how much fills

    def __post_init__(self) -> None:
        self.kind = FaultKind(self.kind)
        if not self.endpoint:
            self.endpoint = "place_order" if self.kind in ORDER_FAULTS else ANY_ENDPOINT
        if self.endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {self.endpoint!r}; one of {sorted(ENDPOINTS)}")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be at least 1, or None for until cleared")
        if self.kind is FaultKind.SERVER_ERROR and self.status is not None and not 500 <= self.status <= 599:
            raise ValueError("server_error needs a 5xx status")
        if self.quantity is not None and self.quantity < 0:
            raise ValueError("quantity must be 0 or more")

    def matches(self, endpoint: str, api_key: str | None) -> bool:
        return self.endpoint in (ANY_ENDPOINT, endpoint) and (self.api_key is None or self.api_key == api_key)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kind": str(self.kind)}


class Faults:
    def __init__(self) -> None:
        self._armed: list[Fault] = []
        self._silent_until = 0.0
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> None:
        with self._lock:
            if fault.kind is FaultKind.FEED_SILENT:
                self._silent_until = time.monotonic() + fault.seconds if fault.seconds else float("inf")
            elif fault.kind is not FaultKind.FEED_DISCONNECT:
                self._armed.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()
            self._silent_until = 0.0

    def armed(self) -> list[Fault]:
        with self._lock:
            return list(self._armed)

    def take(self, endpoint: str, api_key: str | None, kinds: frozenset[FaultKind]) -> Fault | None:
        """The first armed fault of one of ``kinds`` for this request, counted as used."""
        with self._lock:
            for fault in self._armed:
                if fault.kind in kinds and fault.matches(endpoint, api_key):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times == 0:
                            self._armed.remove(fault)
                    return fault
        return None

    @property
    def feed_silent(self) -> bool:
        return time.monotonic() < self._silent_until
