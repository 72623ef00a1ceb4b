"""Positions and margins derived from an account's fills, in Kite's shapes. All of
the day's fills are intraday here (no overnight carry), so ``net`` and ``day`` agree."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from brokers.kite_sim.orders import Trade

# Margin blocked per rupee of order value: MIS gets Kite's 5x intraday leverage.
PRODUCT_MARGIN_RATE = {"MIS": Decimal("0.2"), "CNC": Decimal(1)}

MARGIN_AVAILABLE_FIELDS = ("adhoc_margin", "cash", "opening_balance", "live_balance", "collateral", "intraday_payin")
MARGIN_UTILISED_FIELDS = (
    "debits",
    "exposure",
    "m2m_realised",
    "m2m_unrealised",
    "option_premium",
    "payout",
    "span",
    "holding_sales",
    "turnover",
    "liquid_collateral",
    "stock_collateral",
    "delivery",
)


def positions(trades: list[Trade], last_prices: dict[int, Decimal]) -> list[dict[str, Any]]:
    """One row per (exchange, symbol, product); ``last_prices`` by instrument token."""
    grouped: dict[tuple[str, str, str], list[Trade]] = {}
    for trade in trades:
        key = (trade.order.instrument.exchange, trade.order.instrument.symbol, trade.order.product)
        grouped.setdefault(key, []).append(trade)
    return [_position(fills, last_prices[fills[0].order.instrument.instrument_token]) for fills in grouped.values()]


def realised_pnl(rows: list[dict[str, Any]]) -> Decimal:
    return sum((Decimal(str(row["realised"])) for row in rows), Decimal(0))


def position_margin(rows: list[dict[str, Any]]) -> Decimal:
    return sum(
        (
            abs(row["quantity"]) * Decimal(str(row["average_price"])) * PRODUCT_MARGIN_RATE[row["product"]]
            for row in rows
        ),
        Decimal(0),
    )


def margins(*, opening_balance: Decimal, realised: Decimal, utilised: Decimal) -> dict[str, Any]:
    cash = opening_balance + realised
    available: dict[str, float] = dict.fromkeys(MARGIN_AVAILABLE_FIELDS, 0.0)
    available.update(cash=float(cash), opening_balance=float(opening_balance), live_balance=float(cash - utilised))
    used: dict[str, float] = dict.fromkeys(MARGIN_UTILISED_FIELDS, 0.0)
    used.update(debits=float(utilised), m2m_realised=float(realised))
    return {
        "equity": {"enabled": True, "net": float(cash - utilised), "available": available, "utilised": used},
        "commodity": {
            "enabled": False,
            "net": 0.0,
            "available": dict.fromkeys(MARGIN_AVAILABLE_FIELDS, 0.0),
            "utilised": dict.fromkeys(MARGIN_UTILISED_FIELDS, 0.0),
        },
    }


def money(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _f(value: Decimal) -> float:
    return float(value.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


def _position(fills: list[Trade], last: Decimal) -> dict[str, Any]:
    order = fills[0].order
    instrument = order.instrument
    buys = [t for t in fills if t.order.transaction_type == "BUY"]
    sells = [t for t in fills if t.order.transaction_type == "SELL"]
    buy_quantity = sum(t.quantity for t in buys)
    sell_quantity = sum(t.quantity for t in sells)
    buy_value = sum((t.price * t.quantity for t in buys), Decimal(0))
    sell_value = sum((t.price * t.quantity for t in sells), Decimal(0))
    buy_price = buy_value / buy_quantity if buy_quantity else Decimal(0)
    sell_price = sell_value / sell_quantity if sell_quantity else Decimal(0)
    quantity = buy_quantity - sell_quantity
    if quantity > 0:
        average = buy_price
    elif quantity < 0:
        average = sell_price
    else:
        average = Decimal(0)
    realised = min(buy_quantity, sell_quantity) * (sell_price - buy_price)
    unrealised = quantity * (last - average) if quantity else Decimal(0)
    pnl = sell_value - buy_value + quantity * last
    return {
        "tradingsymbol": instrument.symbol,
        "exchange": instrument.exchange,
        "instrument_token": instrument.instrument_token,
        "product": order.product,
        "quantity": quantity,
        "overnight_quantity": 0,
        "multiplier": 1,
        "average_price": _f(average),
        "close_price": float(instrument.reference_price),
        "last_price": float(last),
        "value": _f(sell_value - buy_value),
        "pnl": _f(pnl),
        "m2m": _f(pnl),
        "unrealised": _f(unrealised),
        "realised": _f(realised),
        "buy_quantity": buy_quantity,
        "buy_price": _f(buy_price),
        "buy_value": _f(buy_value),
        "buy_m2m": _f(buy_value),
        "sell_quantity": sell_quantity,
        "sell_price": _f(sell_price),
        "sell_value": _f(sell_value),
        "sell_m2m": _f(sell_value),
        "day_buy_quantity": buy_quantity,
        "day_buy_price": _f(buy_price),
        "day_buy_value": _f(buy_value),
        "day_sell_quantity": sell_quantity,
        "day_sell_price": _f(sell_price),
        "day_sell_value": _f(sell_value),
    }
