"""The simulator's order books, one per account, behind one lock, and the matching
engine: ``advance`` walks each order through Kite's statuses one stage at a time
and fills what the simulated price allows; modify and cancel act at once."""

from __future__ import annotations

import hashlib
import itertools
import queue
import threading
import time
from datetime import datetime
from decimal import Decimal
from typing import Any

from brokers.adapters.base import Instrument
from brokers.kite_sim import portfolio
from brokers.kite_sim.accounts import AccountState
from brokers.kite_sim.clock import IST
from brokers.kite_sim.errors import general_error, input_error, order_error
from brokers.kite_sim.limits import MODIFICATIONS, Limits
from brokers.kite_sim.market import MarketData
from brokers.kite_sim.orders import (
    CANCELLED,
    COMPLETE,
    FINAL_STATUSES,
    LIVE_STATUSES,
    MAX_TAG_LENGTH,
    MODIFIED,
    MODIFY_PENDING,
    MODIFY_VALIDATION_PENDING,
    OPEN,
    OPEN_PENDING,
    POSTBACK_STATUSES,
    PRODUCTS,
    RECEIVED,
    REJECTED,
    TRIGGER_PENDING,
    UPDATE,
    VALIDATION_PENDING,
    VALIDITIES,
    VARIETIES,
    Order,
    Trade,
    parse_choice,
    parse_prices,
    parse_quantity,
)
from brokers.kite_sim.rules import check_trigger, circuit_breach

PostbackQueue = queue.Queue[tuple[str, dict[str, Any]]]


class OrderBook:
    """Every account's orders and trades behind one lock; ``advance`` is the matching engine."""

    def __init__(self, market: MarketData, *, stage_delay: float = 0.02, limits: Limits | None = None) -> None:
        self.market = market
        self.limits = limits or Limits()
        self.stage_delay = stage_delay
        self.postbacks: PostbackQueue = queue.Queue()
        self._orders: dict[str, dict[str, Order]] = {}
        self._trades: dict[str, list[Trade]] = {}
        self._accounts: dict[str, AccountState] = {}
        self._order_ids = itertools.count(100000001)
        self._trade_ids = itertools.count(10000001)
        self._lock = threading.RLock()

    # --- orders -------------------------------------------------------------------------

    def place(
        self,
        account: AccountState,
        variety: str,
        params: dict[str, str],
        *,
        rejection: str | None = None,
        margin_shortfall: bool = False,
        partial_fill: tuple[int | None, float] | None = None,
    ) -> Order:
        """Accept an order (it starts as PUT ORDER REQ RECEIVED) or raise InputException. A
        ``rejection`` or ``margin_shortfall`` makes the RMS reject it at validation, as Kite
        does: the order id is returned and the order turns REJECTED moments later.
        ``partial_fill`` (quantity or None for half, seconds): only that much fills, and
        the rest is cancelled that many seconds later."""
        if variety not in VARIETIES:
            raise input_error(f"Invalid `variety`: the simulator supports only {sorted(VARIETIES)}.")
        exchange = params.get("exchange", "")
        symbol = params.get("tradingsymbol", "")
        if not exchange:
            raise input_error("Missing `exchange`.")
        if not symbol:
            raise input_error("Missing `tradingsymbol`.")
        instrument = self.market.instrument(exchange, symbol)
        if instrument is None or instrument.segment == "INDICES":
            raise input_error("Invalid `tradingsymbol`.")
        if self.market.suspended(instrument):
            raise input_error("Trading in this instrument is suspended.")
        transaction_type = parse_choice(params, "transaction_type", {"BUY", "SELL"})
        order_type = parse_choice(params, "order_type", {"MARKET", "LIMIT", "SL", "SL-M"})
        product = parse_choice(params, "product", PRODUCTS)
        validity = parse_choice(params, "validity", VALIDITIES, default="DAY")
        quantity = parse_quantity(params.get("quantity"))
        price, trigger_price = parse_prices(params, order_type, instrument)
        band = self.market.circuit(instrument)
        check_trigger(
            self.limits,
            side=transaction_type,
            order_type=order_type,
            price=price,
            trigger_price=trigger_price,
            last=self.market.price(instrument),
            band=band,
        )
        rejection = rejection or circuit_breach(self.limits, order_type=order_type, price=price, band=band)
        tag = params.get("tag") or None
        if tag is not None and (len(tag) > MAX_TAG_LENGTH or not (tag.isascii() and tag.isalnum())):
            raise input_error("Invalid `tag`: at most 20 alphanumeric characters.")
        now = time.time()
        with self._lock:
            order = Order(
                # Kite's order ids: the (IST) trading day, then a serial.
                order_id=f"{datetime.fromtimestamp(now, IST):%y%m%d}{next(self._order_ids):09d}",
                api_key=account.api_key,
                user_id=account.user_id,
                instrument=instrument,
                variety=variety,
                transaction_type=transaction_type,
                order_type=order_type,
                product=product,
                validity=validity,
                quantity=quantity,
                price=price,
                trigger_price=trigger_price,
                tag=tag,
                placed_at=now,
                rejection=rejection,
                margin_shortfall=margin_shortfall,
            )
            if partial_fill is not None:
                part, order.partial_rest_seconds = partial_fill
                order.partial_fill = quantity // 2 if part is None else part
            self._accounts[account.api_key] = account
            self._orders.setdefault(account.api_key, {})[order.order_id] = order
            self._transition(order, RECEIVED, now)
        return order

    def modify(self, account: AccountState, variety: str, order_id: str, params: dict[str, str]) -> Order:
        """Change a live order as Kite does: validated like a new one, at most 25 times, its
        history through MODIFY VALIDATION PENDING, MODIFY PENDING and MODIFIED back to OPEN or
        TRIGGER PENDING, and one order update with the status UPDATE."""
        with self._lock:
            order = self._get(account, order_id)
            if order.variety != variety:
                raise input_error("Invalid `variety`.")
            if order.status in FINAL_STATUSES:
                raise order_error(f"Order cannot be modified as it is {order.status.lower()}.")
            if order.status not in LIVE_STATUSES:
                raise order_error("Order cannot be modified as it is being processed. Try later.")
            if self.limits.on(MODIFICATIONS) and order.modifications >= self.limits.table.modifications_per_order:
                raise order_error("Maximum allowed order modifications exceeded.")
            order_type = parse_choice(params, "order_type", {"MARKET", "LIMIT", "SL", "SL-M"}, default=order.order_type)
            quantity = order.quantity
            if "quantity" in params:
                quantity = parse_quantity(params["quantity"])
                if quantity < order.filled_quantity:
                    raise input_error("Invalid `quantity`: less than the filled quantity.")
            merged = {"price": str(order.price), "trigger_price": str(order.trigger_price), **params}
            price, trigger_price = parse_prices(merged, order_type, order.instrument)
            waits_for_trigger = order_type in ("SL", "SL-M") and not order.triggered
            band = self.market.circuit(order.instrument)
            if waits_for_trigger:
                last = self.market.price(order.instrument)
                side = order.transaction_type
                check_trigger(
                    self.limits,
                    side=side,
                    order_type=order_type,
                    price=price,
                    trigger_price=trigger_price,
                    last=last,
                    band=band,
                )
            breach = circuit_breach(self.limits, order_type=order_type, price=price, band=band)
            if breach is not None:
                raise input_error(breach)
            validity = parse_choice(params, "validity", VALIDITIES, default=order.validity)
            order.quantity, order.price, order.trigger_price = quantity, price, trigger_price
            order.order_type, order.validity = order_type, validity
            order.modified = True
            order.modifications += 1
            now = time.time()
            for status in (MODIFY_VALIDATION_PENDING, MODIFY_PENDING, MODIFIED):
                self._transition(order, status, now)
            self._transition(order, TRIGGER_PENDING if waits_for_trigger else OPEN, now, postback=False)
            self._postback(order, {**order.as_kite(), "status": UPDATE})
            return order

    def cancel(self, account: AccountState, variety: str, order_id: str) -> Order:
        with self._lock:
            order = self._get(account, order_id)
            if order.variety != variety:
                raise input_error("Invalid `variety`.")
            if order.status in FINAL_STATUSES:
                raise order_error(f"Order cannot be cancelled as it is {order.status.lower()}.")
            now = time.time()
            self._transition(order, "CANCEL PENDING", now)
            order.cancelled_quantity = order.quantity - order.filled_quantity
            order.status_message = None
            self._transition(order, CANCELLED, now)
            return order

    def orders(self, api_key: str) -> list[dict[str, Any]]:
        with self._lock:
            return [order.as_kite() for order in self._orders.get(api_key, {}).values()]

    def placed_at(self, api_key: str) -> dict[str, float]:
        """Tag -> when the order reached the book (epoch seconds, to the microsecond)."""
        with self._lock:
            return {order.tag: order.placed_at for order in self._orders.get(api_key, {}).values() if order.tag}

    def history(self, account: AccountState, order_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._get(account, order_id).history)

    def trades(self, api_key: str, order_id: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                trade.as_kite()
                for trade in self._trades.get(api_key, [])
                if order_id is None or trade.order.order_id == order_id
            ]

    def order_trades(self, account: AccountState, order_id: str) -> list[dict[str, Any]]:
        with self._lock:
            self._get(account, order_id)
            return self.trades(account.api_key, order_id)

    def live_instruments(self) -> list[Instrument]:
        """Instruments with orders waiting on the price: the market must keep moving them."""
        with self._lock:
            seen = {
                (o.instrument.exchange, o.instrument.symbol): o.instrument
                for book in self._orders.values()
                for o in book.values()
                if o.status not in FINAL_STATUSES
            }
        return list(seen.values())

    # --- the matching engine ------------------------------------------------------------

    def advance(self, now: float | None = None) -> None:
        """Move every order one stage along if its stage delay has passed; fill what crossed."""
        now = time.time() if now is None else now
        with self._lock:
            for api_key, book in self._orders.items():
                for order in book.values():
                    if order.status in FINAL_STATUSES or order.stage_due > now:
                        continue
                    self._advance_one(api_key, order, now)

    def _advance_one(self, api_key: str, order: Order, now: float) -> None:
        if order.status == RECEIVED:
            self._transition(order, VALIDATION_PENDING, now)
        elif order.status == VALIDATION_PENDING:
            reason = order.rejection or self._margin_shortfall(api_key, order, forced=order.margin_shortfall)
            if reason:
                order.status_message = reason
                self._transition(order, REJECTED, now)
            else:
                self._transition(order, OPEN_PENDING, now)
        elif order.status == OPEN_PENDING:
            order.exchange_order_id = f"1100000{order.order_id[-9:]}"
            order.exchange_timestamp = now
            waiting_for_trigger = order.order_type in ("SL", "SL-M")
            self._transition(order, TRIGGER_PENDING if waiting_for_trigger else OPEN, now)
        elif order.status == TRIGGER_PENDING:
            last = self.market.price(order.instrument)
            buy = order.transaction_type == "BUY"
            if (buy and last >= order.trigger_price) or (not buy and last <= order.trigger_price):
                order.triggered = True
                self._transition(order, OPEN, now)
        elif order.status == OPEN:
            self._try_fill(api_key, order, now)

    def _try_fill(self, api_key: str, order: Order, now: float) -> None:
        last = self.market.price(order.instrument)
        buy = order.transaction_type == "BUY"
        if order.order_type in ("MARKET", "SL-M"):
            fill_price: Decimal | None = last
        elif (buy and last <= order.price) or (not buy and last >= order.price):
            fill_price = min(last, order.price) if buy else max(last, order.price)
        else:
            fill_price = None
        if fill_price is None:
            if order.validity == "IOC":
                order.cancelled_quantity = order.quantity - order.filled_quantity
                self._transition(order, CANCELLED, now)
            return
        if order.partial_fill is not None and order.partial_fill < order.quantity:
            self._fill_part(api_key, order, now, fill_price)
            return
        quantity = order.quantity - order.filled_quantity
        trade = Trade(f"{next(self._trade_ids)}", order, quantity, fill_price, now)
        self._trades.setdefault(api_key, []).append(trade)
        order.average_price = fill_price
        order.filled_quantity = order.quantity
        self._transition(order, COMPLETE, now)

    def _fill_part(self, api_key: str, order: Order, now: float, fill_price: Decimal) -> None:
        """The partial_fill fault: fill the part at once, cancel the rest when its time comes."""
        assert order.partial_fill is not None
        if order.rest_cancel_at is None:
            order.rest_cancel_at = now + order.partial_rest_seconds
            if order.partial_fill > 0:
                trade = Trade(f"{next(self._trade_ids)}", order, order.partial_fill, fill_price, now)
                self._trades.setdefault(api_key, []).append(trade)
                order.average_price = fill_price
                order.filled_quantity = order.partial_fill
                self._transition(order, OPEN, now, postback=True)
            return
        if now >= order.rest_cancel_at:
            order.cancelled_quantity = order.quantity - order.filled_quantity
            order.status_message = "Order partially filled: the exchange cancelled the unfilled quantity."
            self._transition(order, CANCELLED, now)

    def _transition(self, order: Order, status: str, now: float, *, postback: bool | None = None) -> None:
        order.status = status
        order.updated_at = now
        order.stage_due = now + self.stage_delay
        snapshot = order.as_kite()
        order.history.append(snapshot)
        if postback if postback is not None else status in POSTBACK_STATUSES:
            self._postback(order, snapshot)

    def _postback(self, order: Order, snapshot: dict[str, Any]) -> None:
        """An order update for the account's ticker connections, signed as Kite signs them."""
        update = {
            **snapshot,
            "user_id": order.user_id,
            "unfilled_quantity": order.quantity - order.filled_quantity - order.cancelled_quantity,
            "app_id": 1,
            # Kite signs postbacks: SHA-256(order_id + order_timestamp + api_secret).
            "checksum": hashlib.sha256(
                (order.order_id + snapshot["order_timestamp"] + self._accounts[order.api_key].api_secret).encode()
            ).hexdigest(),
        }
        self.postbacks.put((order.api_key, update))

    def _get(self, account: AccountState, order_id: str) -> Order:
        order = self._orders.get(account.api_key, {}).get(order_id)
        if order is None:
            raise general_error("Couldn't find that `order_id`.")
        return order

    # --- money --------------------------------------------------------------------------

    def positions(self, api_key: str) -> list[dict[str, Any]]:
        with self._lock:
            trades = list(self._trades.get(api_key, []))
        last_prices = {t.order.instrument.instrument_token: self.market.price(t.order.instrument) for t in trades}
        return portfolio.positions(trades, last_prices)

    def margins(self, account: AccountState) -> dict[str, Any]:
        with self._lock:
            rows = self.positions(account.api_key)
            utilised = self._utilised(account.api_key, rows, exclude=None)
        return portfolio.margins(
            opening_balance=account.opening_balance, realised=portfolio.realised_pnl(rows), utilised=utilised
        )

    def _margin_shortfall(self, api_key: str, order: Order, *, forced: bool) -> str | None:
        rows = self.positions(api_key)
        account = self._accounts[api_key]
        required = self._order_margin(order)
        available = (
            account.opening_balance
            + portfolio.realised_pnl(rows)
            - self._utilised(api_key, rows, exclude=order.order_id)
        )
        if forced:
            available = min(available, required / 2)
        elif required <= available:
            return None
        return (
            f"Insufficient funds. Required margin is {portfolio.money(required)} but available margin is "
            f"{portfolio.money(max(available, Decimal(0)))}. Check the orderbook for open orders."
        )

    def _order_margin(self, order: Order) -> Decimal:
        basis = order.price if order.order_type in ("LIMIT", "SL") else self.market.price(order.instrument)
        rate = portfolio.PRODUCT_MARGIN_RATE[order.product]
        return (order.quantity - order.filled_quantity) * basis * rate

    def _utilised(self, api_key: str, rows: list[dict[str, Any]], *, exclude: str | None) -> Decimal:
        used = portfolio.position_margin(rows)
        for order in self._orders.get(api_key, {}).values():
            if order.order_id != exclude and order.status in LIVE_STATUSES | {OPEN_PENDING}:
                used += self._order_margin(order)
        return used
