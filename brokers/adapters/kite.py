"""The Zerodha Kite Connect v3 adapter: Kite's orders, positions, quotes, instruments and
login flow (checksum included) translated to and from ``brokers.adapters.base``; the HTTP
transport and error mapping live in ``kite_http``, the tick stream in ``kite_ticker``."""

from __future__ import annotations

import csv
import functools
import hashlib
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final, ParamSpec, TypeVar
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import requests
from django.conf import settings

from brokers.adapters.base import (
    AccountProfile,
    BrokerOrder,
    BrokerOrderStatus,
    Credentials,
    FeedEvents,
    Funds,
    Instrument,
    OrderRequest,
    OrderType,
    Position,
    Product,
    Quote,
    Side,
    TickHandler,
)
from brokers.adapters.kite_http import KITE_VERSION, KiteHttp
from brokers.adapters.kite_ticker import KiteTickStream, OrderUpdateHandler
from brokers.exceptions import (
    AmbiguousOutcome,
    BrokerUnavailable,
    OrderRejected,
)
from brokers.instruments import instruments_from_csv

logger = logging.getLogger(__name__)

# Kite's timestamps are exchange wall-clock times without an offset.
EXCHANGE_TZ: Final = ZoneInfo("Asia/Kolkata")
TAG_PATTERN: Final = re.compile(r"[A-Za-z0-9]{1,20}")
VARIETY: Final = "regular"

FINAL_STATUSES: Final = {
    "COMPLETE": BrokerOrderStatus.COMPLETE,
    "REJECTED": BrokerOrderStatus.REJECTED,
    "CANCELLED": BrokerOrderStatus.CANCELLED,
}


def normalise_status(raw_status: str) -> BrokerOrderStatus:
    """Only Kite's three final statuses end an order; everything else (OPEN, TRIGGER PENDING,
    VALIDATION PENDING, PUT ORDER REQ RECEIVED, MODIFY PENDING, an unknown string) is live."""
    return FINAL_STATUSES.get(raw_status.strip().upper(), BrokerOrderStatus.OPEN)


def to_decimal(value: object) -> Decimal:
    """A price from Kite JSON (parsed with ``parse_float=Decimal``), CSV or a form: never via float."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise ValueError(f"not a price: {value!r}")
    if isinstance(value, int | str):
        try:
            return Decimal(str(value).strip())
        except InvalidOperation as exc:
            raise ValueError(f"not a price: {value!r}") from exc
    if isinstance(value, float):  # only if a caller parsed JSON without parse_float
        return Decimal(repr(value))
    raise ValueError(f"not a price: {value!r}")


def parse_kite_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(text[:19], fmt).replace(tzinfo=EXCHANGE_TZ)
        except ValueError:
            continue
    return None


def validate_tag(tag: str) -> None:
    # Kite accepts at most 20 characters; ours are alphanumeric so they survive any echo intact.
    if not TAG_PATTERN.fullmatch(tag):
        raise OrderRejected(f"Order tag {tag!r} must be 1 to 20 letters or digits.", broker_error_type="InputException")


P = ParamSpec("P")
R = TypeVar("R")


def _parses_response(method: Callable[P, R]) -> Callable[P, R]:
    """A response Kite answered with success but in a shape we cannot read is an outage of
    the API, never a KeyError or ValueError escaping the adapter."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except (KeyError, ValueError, TypeError, AttributeError, ArithmeticError, csv.Error) as exc:
            logger.warning("kite %s: unreadable response (%s)", method.__name__, type(exc).__name__)
            raise BrokerUnavailable(f"Kite's answer to {method.__name__} could not be read.") from None

    return wrapper


class KiteAdapter:
    """One Kite Connect account, translating between Kite's shapes and ``base``'s."""

    kind = "kite"

    def __init__(
        self,
        credentials: Credentials,
        *,
        api_root: str,
        ws_root: str,
        timeout: float | None = None,
        session: requests.Session | None = None,
    ) -> None:
        """``session``: an HTTP session to borrow (the process's, for the order path)."""
        self._credentials = credentials
        self._api_root = api_root
        self._ws_root = ws_root
        if timeout is None:
            timeout = float(settings.KITE_TIMEOUT_SECONDS)
        self._http = KiteHttp(credentials, api_root=api_root, timeout=timeout, session=session)

    def __repr__(self) -> str:
        return f"KiteAdapter(api_root={self._api_root!r}, credentials={self._credentials!r})"

    def close(self) -> None:
        self._http.close()

    # -- login ---------------------------------------------------------------

    def login_url(self, login_root: str) -> str:
        """Where the user signs in to Kite; Kite redirects back with a ``request_token``."""
        return f"{login_root}?{urlencode({'api_key': self._credentials.api_key, 'v': KITE_VERSION})}"

    def exchange_request_token(self, request_token: str, api_secret: str) -> str:
        """Trade a login's ``request_token`` for an access token (POST /session/token)."""
        api_key = self._credentials.api_key
        checksum = hashlib.sha256(f"{api_key}{request_token}{api_secret}".encode()).hexdigest()
        data = self._http.request(
            "POST",
            "/session/token",
            form={"api_key": api_key, "request_token": request_token, "checksum": checksum},
            authenticated=False,
            secrets=(api_secret, request_token),
        )
        token = data.get("access_token") if isinstance(data, Mapping) else None
        if not isinstance(token, str) or not token:
            raise BrokerUnavailable("Kite's session response carried no access token.")
        return token

    # -- BrokerAdapter -------------------------------------------------------

    @_parses_response
    def validate_credentials(self) -> AccountProfile:
        data = self._mapping(self._http.request("GET", "/user/profile"))
        user_id = str(data.get("user_id") or "")
        if not user_id:
            raise BrokerUnavailable("Kite's profile response carried no user id.")
        return AccountProfile(
            broker_user_id=user_id,
            user_name=str(data.get("user_name") or data.get("user_shortname") or ""),
            email=str(data.get("email") or ""),
        )

    def place_order(self, request: OrderRequest) -> str:
        validate_tag(request.tag)
        form: dict[str, str] = {
            "exchange": request.exchange,
            "tradingsymbol": request.symbol,
            "transaction_type": str(request.side),
            "quantity": str(request.quantity),
            "product": str(request.product),
            "order_type": str(request.order_type),
            "validity": "DAY",
            "tag": request.tag,
        }
        if request.order_type in (OrderType.LIMIT, OrderType.SL):
            if request.price is None or request.price <= 0:
                raise OrderRejected(
                    f"A {request.order_type} order needs a positive price.", broker_error_type="InputException"
                )
            form["price"] = format(request.price, "f")
        if request.order_type in (OrderType.SL, OrderType.SL_M):
            if request.trigger_price is None or request.trigger_price <= 0:
                raise OrderRejected(
                    f"A {request.order_type} order needs a positive trigger price.", broker_error_type="InputException"
                )
            form["trigger_price"] = format(request.trigger_price, "f")
        data = self._http.request("POST", f"/orders/{VARIETY}", form=form, order_write=True)
        order_id = data.get("order_id") if isinstance(data, Mapping) else None
        if not order_id:
            # Kite said success but we cannot name the order: only its tag can find it now.
            raise AmbiguousOutcome("Kite accepted the order request but returned no order id.")
        return str(order_id)

    @_parses_response
    def get_order(self, broker_order_id: str) -> BrokerOrder:
        history = self._http.request("GET", f"/orders/{quote(broker_order_id, safe='')}")
        if not isinstance(history, list) or not history:
            raise BrokerUnavailable(f"Kite returned no history for order {broker_order_id}.")
        return kite_order(history[-1])

    @_parses_response
    def orders_by_tag(self, tag: str) -> list[BrokerOrder]:
        validate_tag(tag)
        book = self._http.request("GET", "/orders")
        if not isinstance(book, list):
            raise BrokerUnavailable("Kite's order book was not a list.")
        return [kite_order(entry) for entry in book if isinstance(entry, Mapping) and tag in _tags_of(entry)]

    def modify_order(
        self,
        broker_order_id: str,
        *,
        quantity: int | None = None,
        order_type: OrderType | None = None,
        trigger_price: Decimal | None = None,
        price: Decimal | None = None,
    ) -> None:
        form: dict[str, str] = {}
        if quantity is not None:
            form["quantity"] = str(quantity)
        if order_type is not None:
            form["order_type"] = str(order_type)
        if trigger_price is not None:
            form["trigger_price"] = format(trigger_price, "f")
        if price is not None:
            form["price"] = format(price, "f")
        self._http.request("PUT", f"/orders/{VARIETY}/{quote(broker_order_id, safe='')}", form=form, order_write=True)

    def cancel_order(self, broker_order_id: str) -> None:
        self._http.request("DELETE", f"/orders/{VARIETY}/{quote(broker_order_id, safe='')}", order_write=True)

    @_parses_response
    def positions(self) -> list[Position]:
        data = self._mapping(self._http.request("GET", "/portfolio/positions"))
        net = data.get("net") or []
        if not isinstance(net, list):
            raise BrokerUnavailable("Kite's positions were not a list.")
        positions = []
        for entry in net:
            quantity = int(entry.get("quantity") or 0)
            # Kite keeps squared-off positions of the day with quantity 0; they hold nothing.
            # Only intraday (MIS) is ours: delivery holdings are not this system's to manage.
            if quantity == 0 or entry.get("product") != Product.INTRADAY.value:
                continue
            positions.append(
                Position(
                    exchange=str(entry["exchange"]),
                    symbol=str(entry["tradingsymbol"]),
                    quantity=quantity,
                    average_price=to_decimal(entry.get("average_price") or 0),
                    product=Product.INTRADAY,
                )
            )
        return positions

    @_parses_response
    def last_price(self, exchange: str, symbol: str) -> Decimal:
        key = f"{exchange}:{symbol}"
        data = self._mapping(self._http.request("GET", "/quote/ltp", params={"i": key}))
        quote_entry = data.get(key)
        if not isinstance(quote_entry, Mapping) or quote_entry.get("last_price") is None:
            # Kite answers an unknown instrument with an empty map, not an error.
            raise OrderRejected(f"Kite has no price for {key}.", broker_error_type="InputException")
        return to_decimal(quote_entry["last_price"])

    @_parses_response
    def funds(self) -> Funds:
        """The equity segment's ``net`` (``GET /user/margins/equity``): cash and collateral
        less what open orders and positions already block."""
        data = self._mapping(self._http.request("GET", "/user/margins/equity"))
        return Funds(available=to_decimal(data["net"]))

    @_parses_response
    def quotes(self, instruments: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Quote]:
        wanted = {f"{exchange}:{symbol}": (exchange, symbol) for exchange, symbol in instruments}
        if not wanted:
            return {}
        data = self._mapping(self._http.request("GET", "/quote", params={"i": list(wanted)}))
        found: dict[tuple[str, str], Quote] = {}
        for key, (exchange, symbol) in wanted.items():
            entry = data.get(key)
            # Kite leaves out what it cannot quote (an unknown or suspended instrument).
            if not isinstance(entry, Mapping) or entry.get("last_price") is None:
                continue
            lower, upper = entry.get("lower_circuit_limit"), entry.get("upper_circuit_limit")
            found[(exchange, symbol)] = Quote(
                exchange=exchange,
                symbol=symbol,
                last_price=to_decimal(entry["last_price"]),
                lower_circuit=to_decimal(lower) if lower else None,
                upper_circuit=to_decimal(upper) if upper else None,
            )
        return found

    @_parses_response
    def instruments(self, exchange: str) -> list[Instrument]:
        return instruments_from_csv(self._http.request_csv(f"/instruments/{quote(exchange, safe='')}"))

    def tick_stream(self, on_ticks: TickHandler, events: FeedEvents | None = None) -> KiteTickStream:
        return KiteTickStream(
            api_key=self._credentials.api_key,
            access_token=self._credentials.access_token,
            ws_root=self._ws_root,
            instruments=self.instruments,
            on_ticks=on_ticks,
            events=events,
        )

    def order_update_stream(
        self, on_order_update: OrderUpdateHandler, events: FeedEvents | None = None
    ) -> KiteTickStream:
        """The account's ticker with no instrument subscribed: only its order updates (each
        order's every status change, pushed by Kite), for ``brokers.order_updates``."""
        return KiteTickStream(
            api_key=self._credentials.api_key,
            access_token=self._credentials.access_token,
            ws_root=self._ws_root,
            instruments=self.instruments,
            on_ticks=_no_ticks,
            events=events,
            on_order_update=on_order_update,
        )

    # -- from Kite's shapes ---------------------------------------------------

    def _mapping(self, data: object) -> Mapping[str, Any]:
        if not isinstance(data, Mapping):
            raise BrokerUnavailable("Kite's response data was not an object.")
        return data


def kite_order(entry: Mapping[str, Any]) -> BrokerOrder:
    """An order as Kite shows it (its order book, an order's history, an order update on the
    ticker or a postback, which all share the shape) in ``base``'s terms."""
    raw_status = str(entry.get("status") or "")
    filled = int(entry.get("filled_quantity") or 0)
    average = to_decimal(entry.get("average_price") or 0)
    placed_at = parse_kite_time(entry.get("order_timestamp"))
    updated_at = (
        parse_kite_time(entry.get("exchange_update_timestamp"))
        or parse_kite_time(entry.get("exchange_timestamp"))
        or placed_at
    )
    tags = _tags_of(entry)
    return BrokerOrder(
        broker_order_id=str(entry.get("order_id") or ""),
        tag=str(entry.get("tag") or (tags[0] if tags else "")),
        exchange=str(entry.get("exchange") or ""),
        symbol=str(entry.get("tradingsymbol") or ""),
        side=Side(str(entry.get("transaction_type") or "").upper()),
        quantity=int(entry.get("quantity") or 0),
        filled_quantity=filled,
        status=normalise_status(raw_status),
        # Kite reports 0 until something fills.
        average_price=average if filled and average > 0 else None,
        status_message=str(entry.get("status_message") or ""),
        placed_at=placed_at,
        updated_at=updated_at,
        raw_status=raw_status,
        order_type=str(entry.get("order_type") or ""),
        trigger_price=to_decimal(entry.get("trigger_price") or 0) or None,
    )


def _no_ticks(batch: list[Any]) -> None:
    """An order-update stream subscribes to no instrument: no tick reaches it."""


def _tags_of(entry: Mapping[str, Any]) -> list[str]:
    tags = [str(entry["tag"])] if entry.get("tag") else []
    extra = entry.get("tags")
    if isinstance(extra, list):
        tags.extend(str(t) for t in extra if t and str(t) not in tags)
    return tags
