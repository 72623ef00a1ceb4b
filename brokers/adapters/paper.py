"""The paper broker: the whole adapter interface with no credentials and no money. Orders live in
the database (``PaperOrder``) and settle when the book is read, market orders at the last tick moved
against the trader by ``PAPER_SLIPPAGE_BPS``; stop orders (SL, SL-M) trigger from the last tick seen
when the book is read; positions cover today's book, as for MIS orders."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import datetime, time, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from brokers.adapters.base import (
    AccountProfile,
    BrokerOrder,
    BrokerOrderStatus,
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
from brokers.adapters.paper_ticks import PaperTickStream
from brokers.exceptions import BrokerAuthError, OrderRejected
from brokers.instruments import find_instrument, load_instruments
from brokers.models import BrokerAccount, PaperOrder

logger = logging.getLogger(__name__)

TAG_PATTERN = re.compile(r"[A-Za-z0-9]{1,20}")
NSE_TIME_ZONE = ZoneInfo("Asia/Kolkata")
NSE_OPEN, NSE_CLOSE = time(9, 15), time(15, 30)
_BPS = Decimal(10_000)
# Kite's published cap on modifications of one order; past it a modify is refused.
MAX_MODIFICATIONS = 25
_STOPS = (OrderType.SL, OrderType.SL_M)


def nse_session_open(at: datetime) -> bool:
    """The NSE equity session, weekdays 09:15-15:30 IST (exchange holidays are the
    market calendar's business, not the paper broker's)."""
    local = at.astimezone(NSE_TIME_ZONE)
    return local.weekday() < 5 and NSE_OPEN <= local.time() < NSE_CLOSE


def _to_tick(price: Decimal, tick_size: Decimal, rounding: str) -> Decimal:
    if not tick_size:
        return price.quantize(Decimal("0.01"), rounding=rounding)
    return (price / tick_size).quantize(Decimal(1), rounding=rounding) * tick_size


class PaperAdapter:
    kind = "paper"

    def __init__(self, account: BrokerAccount) -> None:
        self._account = account

    def __repr__(self) -> str:
        return f"PaperAdapter(account_id={self._account.pk})"

    # -- credentials ---------------------------------------------------------

    def validate_credentials(self) -> AccountProfile:
        """A paper account needs no credentials: it is refused only when it no longer
        exists or an operator disabled it (how the contract's refused adapter is made)."""
        account = self._account
        if account.pk is not None:
            status = BrokerAccount.objects.filter(pk=account.pk).values_list("status", flat=True).first()
            if status is None or status == BrokerAccount.Status.DISABLED:
                raise BrokerAuthError("This paper account is disabled or no longer exists.")
        return AccountProfile(
            broker_user_id=f"PAPER{account.owner_id}",
            user_name="Paper trader",
            email=account.owner.email if account.owner_id else "",
        )

    # -- orders --------------------------------------------------------------

    def place_order(self, request: OrderRequest) -> str:
        instrument = self._tradable(request)
        now = timezone.now()
        last = self.last_price(request.exchange, request.symbol)
        order = PaperOrder(
            account=self._account,
            tag=request.tag,
            exchange=instrument.exchange,
            symbol=instrument.symbol,
            side=request.side.value,
            order_type=request.order_type.value,
            product=request.product.value,
            quantity=request.quantity,
            limit_price=request.price if request.order_type in (OrderType.LIMIT, OrderType.SL) else None,
            trigger_price=request.trigger_price if request.order_type in _STOPS else None,
            placed_at=now,
        )
        if request.order_type is OrderType.MARKET:
            self._make_market(order, last, instrument.tick_size, now)
        order.save()
        logger.info(
            "paper order placed",
            extra={"account_id": self._account.pk, "order_id": order.pk, "tag": order.tag, "symbol": order.symbol},
        )
        if settings.PAPER_LATENCY_MS == 0 or request.order_type is not OrderType.MARKET:
            self._settle([order], now)
        return str(order.pk)

    def get_order(self, broker_order_id: str) -> BrokerOrder:
        order = self._order(broker_order_id)
        self._settle([order], timezone.now())
        return _broker_order(order)

    def orders_by_tag(self, tag: str) -> list[BrokerOrder]:
        orders = list(self._today().filter(tag=tag))
        self._settle(orders, timezone.now())
        return [_broker_order(order) for order in orders]

    def modify_order(
        self,
        broker_order_id: str,
        *,
        quantity: int | None = None,
        order_type: OrderType | None = None,
        trigger_price: Decimal | None = None,
        price: Decimal | None = None,
    ) -> None:
        """As Kite: only an open order, at most MAX_MODIFICATIONS times; to MARKET it is priced
        at the last tick (slipped) and fills after the latency, like a new market order."""
        order = self._order(broker_order_id)
        now = timezone.now()
        self._settle([order], now)
        if order.status != BrokerOrderStatus.OPEN:
            raise OrderRejected(f"Order cannot be modified as it is {order.status.lower()}.")
        if order.modifications >= MAX_MODIFICATIONS:
            raise OrderRejected(f"Maximum allowed order modifications exceeded ({MAX_MODIFICATIONS}).")
        instrument = find_instrument(order.exchange, order.symbol)
        assert instrument is not None  # it was tradable when placed
        new_type = OrderType(order.order_type) if order_type is None else order_type
        changes: dict[str, object] = {"order_type": new_type.value, "modifications": order.modifications + 1}
        if quantity is not None:
            if quantity <= 0 or quantity % instrument.lot_size or quantity < order.filled_quantity:
                raise OrderRejected("Invalid `quantity`.")
            changes["quantity"] = quantity
        trigger = trigger_price if trigger_price is not None else order.trigger_price
        limit = price if price is not None else order.limit_price
        if new_type in _STOPS and (trigger is None or trigger <= 0):
            raise OrderRejected("Invalid `trigger_price`.")
        if new_type in (OrderType.LIMIT, OrderType.SL) and (limit is None or limit <= 0):
            raise OrderRejected("Invalid `price`.")
        changes["trigger_price"] = trigger if new_type in _STOPS else None
        changes["limit_price"] = limit if new_type in (OrderType.LIMIT, OrderType.SL) else None
        if new_type is OrderType.MARKET:
            last = self.last_price(order.exchange, order.symbol)
            changes["fill_price"] = self._slipped(last, Side(order.side), instrument.tick_size)
            changes["fill_due_at"] = now + timedelta(milliseconds=settings.PAPER_LATENCY_MS)
        elif new_type is not OrderType(order.order_type) or trigger_price is not None:
            changes["fill_price"], changes["fill_due_at"] = None, None  # an untriggered stop again
        # Compare-and-set: a fill settled by another reader a moment ago wins over the modify.
        modified = PaperOrder.objects.filter(
            pk=order.pk, status=BrokerOrderStatus.OPEN, modifications=order.modifications
        ).update(**changes, updated_at=now)
        if not modified:
            order.refresh_from_db(fields=["status"])
            raise OrderRejected(f"Order cannot be modified as it is {order.status.lower()}.")
        order.refresh_from_db()
        self._settle([order], now)

    def cancel_order(self, broker_order_id: str) -> None:
        order = self._order(broker_order_id)
        self._settle([order], timezone.now())
        # Compare-and-set: a fill settled by another reader a moment ago wins over the cancel.
        cancelled = PaperOrder.objects.filter(pk=order.pk, status=BrokerOrderStatus.OPEN).update(
            status=BrokerOrderStatus.CANCELLED, status_message="Cancelled by the user.", updated_at=timezone.now()
        )
        if not cancelled:
            order.refresh_from_db(fields=["status"])
            raise OrderRejected(f"Order {broker_order_id} is {order.status} and can no longer be cancelled.")

    def positions(self) -> list[Position]:
        # Intraday (MIS) positions are squared off at the close, so only today's fills count.
        book = self._today()
        self._settle(list(book.filter(status=BrokerOrderStatus.OPEN)), timezone.now())
        fills = book.filter(status=BrokerOrderStatus.COMPLETE).order_by("filled_at", "id")
        net: dict[tuple[str, str, str], tuple[int, Decimal]] = {}
        for fill in fills:
            key = (fill.exchange, fill.symbol, fill.product)
            quantity, average = net.get(key, (0, Decimal(0)))
            signed = fill.filled_quantity if fill.side == Side.BUY else -fill.filled_quantity
            assert fill.average_price is not None  # a COMPLETE paper order always has its price
            net[key] = (quantity + signed, _average_after(quantity, average, signed, fill.average_price))
        return [
            Position(exchange=key[0], symbol=key[1], quantity=quantity, average_price=average, product=Product(key[2]))
            for key, (quantity, average) in net.items()
        ]

    # -- market data ---------------------------------------------------------

    def last_price(self, exchange: str, symbol: str) -> Decimal:
        instrument = find_instrument(exchange, symbol)
        if instrument is None:
            raise OrderRejected(f"{exchange}:{symbol} is not a tradable instrument.")
        raw = get_redis().hget(redis_keys.price(instrument.exchange, instrument.symbol), "price")
        if raw:
            price = Decimal(str(raw))
            if price > 0:
                return _to_tick(price, instrument.tick_size, ROUND_HALF_EVEN)  # float noise off the tick grid
        # No tick seen yet (a fresh install, a quiet symbol): the reference price stands in.
        return instrument.reference_price

    def funds(self) -> Funds:
        """The paper broker holds no money and places any order: no limit."""
        return Funds(available=None)

    def quotes(self, instruments: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Quote]:
        """The last price of each instrument the paper broker lists; it has no circuit band."""
        found = {}
        for exchange, symbol in instruments:
            if find_instrument(exchange, symbol) is not None:
                found[(exchange, symbol)] = Quote(exchange, symbol, self.last_price(exchange, symbol))
        return found

    def instruments(self, exchange: str) -> list[Instrument]:
        return [i for i in load_instruments() if i.exchange == exchange.upper()]

    def tick_stream(self, on_ticks: TickHandler, events: FeedEvents | None = None) -> PaperTickStream:
        return PaperTickStream(on_ticks, events, interval=settings.PAPER_TICK_INTERVAL)

    # -- internals -----------------------------------------------------------

    def _book(self) -> QuerySet[PaperOrder]:
        return PaperOrder.objects.filter(account_id=self._account.pk)

    def _today(self) -> QuerySet[PaperOrder]:
        """Today's book, as a broker shows it: orders since midnight at the exchange."""
        midnight = timezone.now().astimezone(NSE_TIME_ZONE).replace(hour=0, minute=0, second=0, microsecond=0)
        return self._book().filter(placed_at__gte=midnight)

    def _order(self, broker_order_id: str) -> PaperOrder:
        order = self._book().filter(pk=int(broker_order_id)).first() if broker_order_id.isdigit() else None
        if order is None:
            raise OrderRejected(f"There is no order {broker_order_id} in this account's book.")
        return order

    def _tradable(self, request: OrderRequest) -> Instrument:
        """Refuse, as a broker's order API would, what can never be filled."""
        if not TAG_PATTERN.fullmatch(request.tag):
            raise OrderRejected("The order tag must be 1 to 20 letters or digits.")
        instrument = find_instrument(request.exchange, request.symbol)
        if instrument is None:
            raise OrderRejected(f"{request.exchange}:{request.symbol} is not a tradable instrument.")
        if instrument.segment == "INDICES" or instrument.lot_size <= 0:
            raise OrderRejected(f"{instrument.exchange}:{instrument.symbol} is an index: it has a price, not shares.")
        if request.quantity <= 0:
            raise OrderRejected("The quantity must be a positive whole number.")
        if request.quantity % instrument.lot_size:
            raise OrderRejected(f"The quantity must be a multiple of the lot size {instrument.lot_size}.")
        if request.order_type in (OrderType.LIMIT, OrderType.SL) and (request.price is None or request.price <= 0):
            raise OrderRejected(f"A {request.order_type} order needs a positive price.")
        if request.order_type in _STOPS and (request.trigger_price is None or request.trigger_price <= 0):
            raise OrderRejected(f"A {request.order_type} order needs a positive trigger price.")
        if not settings.PAPER_MARKET_ALWAYS_OPEN and not nse_session_open(timezone.now()):
            raise OrderRejected("The market is closed: orders are accepted Mon-Fri 09:15-15:30 IST.")
        if self._account.pk is None:
            raise OrderRejected("This paper account is not saved yet.")
        return instrument

    def _slipped(self, price: Decimal, side: Side, tick_size: Decimal) -> Decimal:
        slippage = Decimal(str(settings.PAPER_SLIPPAGE_BPS)) / _BPS
        if side is Side.BUY:
            return _to_tick(price * (1 + slippage), tick_size, ROUND_CEILING)
        return _to_tick(price * (1 - slippage), tick_size, ROUND_FLOOR)

    def _make_market(self, order: PaperOrder, last: Decimal, tick_size: Decimal, now: datetime) -> None:
        """Price a market order (or a triggered SL-M) at ``last``, due after the latency."""
        order.fill_price = self._slipped(last, Side(order.side), tick_size)
        order.fill_due_at = now + timedelta(milliseconds=settings.PAPER_LATENCY_MS)

    def _trigger(self, order: PaperOrder, now: datetime) -> bool:
        """An untriggered stop whose trigger the last tick reached: triggered (``fill_due_at``
        set marks it; an SL-M priced as a market order). True when it is triggered."""
        if order.fill_due_at is not None:
            return True
        assert order.trigger_price is not None
        last = self.last_price(order.exchange, order.symbol)
        reached = last >= order.trigger_price if order.side == Side.BUY else last <= order.trigger_price
        if not reached:
            return False
        if order.order_type == OrderType.SL_M:
            instrument = find_instrument(order.exchange, order.symbol)
            self._make_market(order, last, instrument.tick_size if instrument else Decimal(0), now)
        else:
            order.fill_due_at = now
        triggered = PaperOrder.objects.filter(
            pk=order.pk, status=BrokerOrderStatus.OPEN, modifications=order.modifications, fill_due_at__isnull=True
        ).update(fill_price=order.fill_price, fill_due_at=order.fill_due_at, updated_at=now)
        order.refresh_from_db()
        return bool(triggered) or order.fill_due_at is not None

    def _settle(self, orders: Iterable[PaperOrder], now: datetime) -> None:
        """Complete what is due: market orders past their latency, limits the price crossed,
        stops once triggered as the market or limit order they become."""
        for order in orders:
            if order.status != BrokerOrderStatus.OPEN:
                continue
            if order.order_type in _STOPS and not self._trigger(order, now):
                continue
            if order.status != BrokerOrderStatus.OPEN:
                continue
            price = self._fill_price(order, now)
            if price is None:
                continue
            # Compare-and-set on OPEN: of two readers settling at once exactly one fills it.
            filled = PaperOrder.objects.filter(pk=order.pk, status=BrokerOrderStatus.OPEN).update(
                status=BrokerOrderStatus.COMPLETE,
                filled_quantity=order.quantity,
                average_price=price,
                filled_at=now,
                updated_at=now,
            )
            order.refresh_from_db()
            if filled:
                logger.info("paper order filled", extra={"order_id": order.pk, "tag": order.tag, "price": str(price)})

    def _fill_price(self, order: PaperOrder, now: datetime) -> Decimal | None:
        if order.order_type in (OrderType.MARKET, OrderType.SL_M):
            due = order.fill_due_at is None or order.fill_due_at <= now
            return order.fill_price if due else None
        assert order.limit_price is not None
        last = self.last_price(order.exchange, order.symbol)
        if order.side == Side.BUY and last <= order.limit_price:
            return last
        if order.side == Side.SELL and last >= order.limit_price:
            return last
        return None


def _average_after(quantity: int, average: Decimal, signed_fill: int, price: Decimal) -> Decimal:
    """Average price of a net position after a fill: adding keeps a weighted average,
    reducing keeps it, crossing through zero starts afresh at the fill price."""
    new_quantity = quantity + signed_fill
    if new_quantity == 0:
        return Decimal(0)
    if quantity == 0 or (quantity > 0) != (new_quantity > 0):
        return price
    if (quantity > 0) == (signed_fill > 0):
        return (average * abs(quantity) + price * abs(signed_fill)) / abs(new_quantity)
    return average


def _broker_order(order: PaperOrder) -> BrokerOrder:
    return BrokerOrder(
        broker_order_id=str(order.pk),
        tag=order.tag,
        exchange=order.exchange,
        symbol=order.symbol,
        side=Side(order.side),
        quantity=order.quantity,
        filled_quantity=order.filled_quantity,
        status=BrokerOrderStatus(order.status),
        average_price=order.average_price,
        status_message=order.status_message,
        placed_at=order.placed_at,
        updated_at=order.filled_at or order.updated_at,
        raw_status=_raw_status(order),
        order_type=order.order_type,
        trigger_price=order.trigger_price,
    )


def _raw_status(order: PaperOrder) -> str:
    """Kite's words: a stop not triggered yet is TRIGGER PENDING (OPEN to the system)."""
    if order.status == BrokerOrderStatus.OPEN and order.order_type in _STOPS and order.fill_due_at is None:
        return "TRIGGER PENDING"
    return order.status
