"""An order and a trade as Kite shows them, Kite's status names, and the parameter
validation Kite's OMS does before an order is accepted (``InputException``)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from brokers.adapters.base import Instrument
from brokers.kite_sim.clock import kite_time
from brokers.kite_sim.errors import input_error

RECEIVED = "PUT ORDER REQ RECEIVED"
VALIDATION_PENDING = "VALIDATION PENDING"
OPEN_PENDING = "OPEN PENDING"
OPEN = "OPEN"
TRIGGER_PENDING = "TRIGGER PENDING"
COMPLETE = "COMPLETE"
REJECTED = "REJECTED"
CANCELLED = "CANCELLED"
MODIFY_VALIDATION_PENDING = "MODIFY VALIDATION PENDING"
MODIFY_PENDING = "MODIFY PENDING"
MODIFIED = "MODIFIED"
UPDATE = "UPDATE"  # the status of the order update a modification pushes
FINAL_STATUSES = frozenset({COMPLETE, REJECTED, CANCELLED})
LIVE_STATUSES = frozenset({OPEN, TRIGGER_PENDING})
# Statuses pushed to the account's ticker connections; the intermediate pending ones are not.
POSTBACK_STATUSES = frozenset({OPEN, TRIGGER_PENDING, COMPLETE, CANCELLED, REJECTED})

VARIETIES = frozenset({"regular"})
PRODUCTS = frozenset({"MIS", "CNC"})
VALIDITIES = frozenset({"DAY", "IOC"})
MAX_TAG_LENGTH = 20


@dataclass
class Order:
    order_id: str
    api_key: str
    user_id: str
    instrument: Instrument
    variety: str
    transaction_type: str
    order_type: str
    product: str
    validity: str
    quantity: int
    price: Decimal
    trigger_price: Decimal
    tag: str | None
    placed_at: float
    status: str = RECEIVED
    status_message: str | None = None
    exchange_order_id: str | None = None
    exchange_timestamp: float | None = None
    updated_at: float = 0.0
    filled_quantity: int = 0
    average_price: Decimal = Decimal(0)
    cancelled_quantity: int = 0
    modified: bool = False
    modifications: int = 0  # Kite allows 25 an order
    triggered: bool = False
    rejection: str | None = None  # a fault asked for this order to be rejected at validation
    margin_shortfall: bool = False  # a fault asked for the RMS to find too little margin
    partial_fill: int | None = None  # a fault asked for only this much to fill, the rest cancelled
    partial_rest_seconds: float = 0.0
    rest_cancel_at: float | None = None  # once the part has filled: when the rest is cancelled
    stage_due: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pending_quantity(self) -> int:
        if self.status in FINAL_STATUSES:
            return 0
        return self.quantity - self.filled_quantity

    def as_kite(self) -> dict[str, Any]:
        return {
            "account_id": self.user_id,
            "placed_by": self.user_id,
            "order_id": self.order_id,
            "exchange_order_id": self.exchange_order_id,
            "parent_order_id": None,
            "status": self.status,
            "status_message": self.status_message,
            "status_message_raw": self.status_message,
            "order_timestamp": kite_time(self.updated_at or self.placed_at),
            "exchange_update_timestamp": kite_time(self.updated_at) if self.exchange_order_id else None,
            "exchange_timestamp": kite_time(self.exchange_timestamp) if self.exchange_timestamp else None,
            "variety": self.variety,
            "modified": self.modified,
            "exchange": self.instrument.exchange,
            "tradingsymbol": self.instrument.symbol,
            "instrument_token": self.instrument.instrument_token,
            "order_type": self.order_type,
            "transaction_type": self.transaction_type,
            "validity": self.validity,
            "validity_ttl": 0,
            "product": self.product,
            "quantity": self.quantity,
            "disclosed_quantity": 0,
            "price": float(self.price),
            "trigger_price": float(self.trigger_price),
            "average_price": float(self.average_price),
            "filled_quantity": self.filled_quantity,
            "pending_quantity": self.pending_quantity,
            "cancelled_quantity": self.cancelled_quantity,
            "market_protection": 0,
            "meta": {},
            "tag": self.tag,
            "tags": [self.tag] if self.tag else [],
            "guid": hashlib.sha1(self.order_id.encode(), usedforsecurity=False).hexdigest()[:18],
        }


@dataclass(frozen=True)
class Trade:
    trade_id: str
    order: Order
    quantity: int
    price: Decimal
    at: float

    def as_kite(self) -> dict[str, Any]:
        return {
            "trade_id": self.trade_id,
            "order_id": self.order.order_id,
            "exchange_order_id": self.order.exchange_order_id,
            "tradingsymbol": self.order.instrument.symbol,
            "exchange": self.order.instrument.exchange,
            "instrument_token": self.order.instrument.instrument_token,
            "transaction_type": self.order.transaction_type,
            "product": self.order.product,
            "average_price": float(self.price),
            "quantity": self.quantity,
            "fill_timestamp": kite_time(self.at),
            "order_timestamp": kite_time(self.order.placed_at),
            "exchange_timestamp": kite_time(self.at),
        }


def parse_choice(
    params: dict[str, str], name: str, allowed: set[str] | frozenset[str], default: str | None = None
) -> str:
    value = params.get(name) or default
    if value is None:
        raise input_error(f"Missing `{name}`.")
    if value not in allowed:
        raise input_error(f"Invalid `{name}`.")
    return value


def parse_quantity(raw: str | None) -> int:
    try:
        quantity = int(raw or "")
    except ValueError:
        raise input_error("Invalid `quantity`.") from None
    if quantity <= 0:
        raise input_error("Invalid `quantity`: it must be greater than zero.")
    return quantity


def _decimal(params: dict[str, str], name: str) -> Decimal:
    try:
        value = Decimal(params.get(name) or "0")
    except InvalidOperation:
        raise input_error(f"Invalid `{name}`.") from None
    if value < 0 or not value.is_finite():
        raise input_error(f"Invalid `{name}`.")
    return value


def parse_prices(params: dict[str, str], order_type: str, instrument: Instrument) -> tuple[Decimal, Decimal]:
    price = _decimal(params, "price") if order_type in ("LIMIT", "SL") else Decimal(0)
    trigger_price = _decimal(params, "trigger_price") if order_type in ("SL", "SL-M") else Decimal(0)
    if order_type in ("LIMIT", "SL") and price <= 0:
        raise input_error("Invalid `price`.")
    if order_type in ("SL", "SL-M") and trigger_price <= 0:
        raise input_error("Invalid `trigger_price`.")
    for value in (price, trigger_price):
        if value and instrument.tick_size and value % instrument.tick_size:
            raise input_error(
                f"Tick size for this script is {instrument.tick_size}. "
                "Kindly enter the price in the multiple of tick size for this script."
            )
    return price, trigger_price
