"""The one interface every broker adapter implements, with typed results: the rest of the system
speaks only this and ``brokers.exceptions``, so no broker's shapes leak past an adapter. Money is
``Decimal`` except in ``Tick``, which lives on the hot path; its consumers convert at their edge."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol, runtime_checkable


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    SL = "SL"  # stop-limit: at the trigger, a LIMIT at ``price``
    SL_M = "SL-M"  # stop-market: at the trigger, a MARKET


class Product(StrEnum):
    INTRADAY = "MIS"  # Kite's name for intraday, squared off by the broker at day end


class BrokerOrderStatus(StrEnum):
    """The broker's view of an order, normalised. Anything not final is OPEN,
    including statuses an adapter does not know (they are treated as still live)."""

    OPEN = "OPEN"
    COMPLETE = "COMPLETE"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"

    @property
    def is_final(self) -> bool:
        return self is not BrokerOrderStatus.OPEN


@dataclass(frozen=True)
class Credentials:
    api_key: str
    api_secret: str = ""
    access_token: str = ""

    def __repr__(self) -> str:  # never print secrets, not even in a traceback
        return f"Credentials(api_key={self.api_key[:4]}…)"


@dataclass(frozen=True)
class AccountProfile:
    """What a successful credential check tells us about the account."""

    broker_user_id: str
    user_name: str
    email: str = ""


@dataclass(frozen=True)
class OrderRequest:
    exchange: str
    symbol: str
    side: Side
    quantity: int
    tag: str  # ours, unique, at most 20 alphanumerics: how an order is found again
    order_type: OrderType = OrderType.MARKET
    price: Decimal | None = None  # LIMIT and SL only
    product: Product = Product.INTRADAY
    trigger_price: Decimal | None = None  # SL and SL-M only


@dataclass(frozen=True)
class BrokerOrder:
    broker_order_id: str
    tag: str
    exchange: str
    symbol: str
    side: Side
    quantity: int
    filled_quantity: int
    status: BrokerOrderStatus
    average_price: Decimal | None
    status_message: str
    placed_at: datetime | None
    updated_at: datetime | None
    raw_status: str = ""
    order_type: str = ""
    trigger_price: Decimal | None = None


@dataclass(frozen=True)
class Position:
    exchange: str
    symbol: str
    quantity: int  # net: positive long, negative short
    average_price: Decimal
    product: Product = Product.INTRADAY


@dataclass(frozen=True)
class Instrument:
    instrument_token: int
    exchange_token: int
    exchange: str
    symbol: str
    name: str
    tick_size: Decimal
    lot_size: int
    segment: str
    reference_price: Decimal  # the dump's last price (Kite's is often 0); seeds simulated prices
    instrument_type: str = "EQ"  # Kite's: EQ (indices too), FUT, CE, PE


@dataclass(frozen=True)
class Funds:
    """What the account may spend on new equity orders now (Kite: the equity segment's
    ``net`` of ``GET /user/margins``). ``available`` None: the broker sets no limit (paper)."""

    available: Decimal | None


@dataclass(frozen=True)
class Quote:
    """An instrument's last price and the day's circuit band (None where the broker has none)."""

    exchange: str
    symbol: str
    last_price: Decimal
    lower_circuit: Decimal | None = None
    upper_circuit: Decimal | None = None

    @property
    def at_circuit(self) -> bool:
        """At either limit: at the upper a BUY finds no seller, at the lower an exit no buyer."""
        at_upper = self.upper_circuit is not None and self.last_price >= self.upper_circuit
        at_lower = self.lower_circuit is not None and self.last_price <= self.lower_circuit
        return at_upper or at_lower


@dataclass(frozen=True)
class Tick:
    exchange: str
    symbol: str
    price: float
    exchange_ts: float  # seconds since the epoch, exchange time of the trade (or receipt)
    instrument_token: int = 0


TickHandler = Callable[[list[Tick]], None]
"""Called once per received frame with all of its ticks (a batch, never one call a tick)."""


class FeedEvents(Protocol):
    """What a tick stream reports besides ticks (B5, B6/M3, M4 are built on these)."""

    def on_connected(self) -> None: ...
    def on_disconnected(self, reason: str) -> None: ...
    def on_error(self, reason: str) -> None: ...


@runtime_checkable
class TickStream(Protocol):
    """A live market-data connection. ``start`` returns at once; ticks arrive on a
    background thread; the stream reconnects by itself with backoff and
    re-subscribes to everything subscribed so far."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def subscribe(self, instruments: Iterable[tuple[str, str]]) -> None: ...  # (exchange, symbol)
    def unsubscribe(self, instruments: Iterable[tuple[str, str]]) -> None: ...
    @property
    def connected(self) -> bool: ...


@runtime_checkable
class BrokerAdapter(Protocol):
    kind: str

    def validate_credentials(self) -> AccountProfile:
        """Ask the broker who these credentials belong to; BrokerAuthError if it refuses."""
        ...

    def place_order(self, request: OrderRequest) -> str:
        """Send the order and return the broker's order id (B3). Raises OrderRejected (B4),
        RateLimited, BrokerUnavailable (certainly not placed) or AmbiguousOutcome."""
        ...

    def get_order(self, broker_order_id: str) -> BrokerOrder: ...

    def orders_by_tag(self, tag: str) -> list[BrokerOrder]:
        """Every order of today's book carrying ``tag``: how an ambiguous placement is settled."""
        ...

    def modify_order(
        self,
        broker_order_id: str,
        *,
        quantity: int | None = None,
        order_type: OrderType | None = None,
        trigger_price: Decimal | None = None,
        price: Decimal | None = None,
    ) -> None:
        """Change an open order in place (what is None stays): how the protective stop moves,
        grows with a partial BUY's later fills and becomes the exit (to MARKET). OrderRejected
        (permanent) when the broker refuses: the order is final, or past its modification limit."""
        ...

    def cancel_order(self, broker_order_id: str) -> None: ...

    def positions(self) -> list[Position]: ...

    def last_price(self, exchange: str, symbol: str) -> Decimal: ...

    def funds(self) -> Funds:
        """What the account may spend now: the morning readiness check's funds."""
        ...

    def quotes(self, instruments: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Quote]:
        """Quotes by (exchange, symbol), in one request. An instrument the broker quotes nothing
        for (unknown, or suspended from trading) is absent from the answer."""
        ...

    def instruments(self, exchange: str) -> list[Instrument]: ...

    def tick_stream(self, on_ticks: TickHandler, events: FeedEvents | None = None) -> TickStream: ...


@runtime_checkable
class SessionLogin(Protocol):
    """Brokers whose sessions start with a login redirect (Kite): the ``request_token``
    the redirect carries is exchanged for an access token."""

    def exchange_request_token(self, request_token: str, api_secret: str) -> str: ...
