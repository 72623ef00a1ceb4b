"""The price rules Kite's OMS checks on a new or modified order, with Kite's own messages:
a stop's trigger on the far side of the last price (a SELL stop below it, a BUY stop
above), an SL's trigger not beyond its limit price, prices inside the circuit band."""

from __future__ import annotations

from decimal import Decimal

from brokers.kite_sim.errors import input_error
from brokers.kite_sim.limits import CIRCUIT, STOP_TRIGGERS, Limits

# The RMS's rejection of a price outside the band: the order is accepted, then REJECTED.
CIRCUIT_REJECTION = "RMS:Rule: Check circuit limit including square off order exceeds"


def check_trigger(
    limits: Limits,
    *,
    side: str,
    order_type: str,
    price: Decimal,
    trigger_price: Decimal,
    last: Decimal,
    band: tuple[Decimal, Decimal],
) -> None:
    """Raise Kite's InputException for a stop order whose trigger is on the wrong side."""
    if order_type not in ("SL", "SL-M"):
        return
    buy = side == "BUY"
    lower, upper = band
    if limits.on(CIRCUIT):
        if buy and trigger_price > upper:
            raise input_error("Trigger price for stoploss buy orders cannot be above the upper circuit price.")
        if not buy and trigger_price < lower:
            raise input_error("Trigger price for stoploss sell orders cannot be below the lower circuit price.")
    if not limits.on(STOP_TRIGGERS):
        return
    if buy and trigger_price <= last:
        raise input_error("Trigger price for stoploss buy orders should be higher than the last traded price.")
    if not buy and trigger_price >= last:
        raise input_error("Trigger price for stoploss sell orders should be lower than the last traded price.")
    if order_type == "SL" and buy and trigger_price > price:
        raise input_error("Trigger price can't be higher than price.")
    if order_type == "SL" and not buy and trigger_price < price:
        raise input_error("Trigger price can't be lesser than price.")


def circuit_breach(limits: Limits, *, order_type: str, price: Decimal, band: tuple[Decimal, Decimal]) -> str | None:
    """The RMS's status message for a LIMIT / SL price outside the circuit band, or None."""
    if order_type not in ("LIMIT", "SL") or not limits.on(CIRCUIT):
        return None
    lower, upper = band
    if price > upper:
        return f"{CIRCUIT_REJECTION} :: Order price is above the upper circuit limit of {upper}."
    if price < lower:
        return f"{CIRCUIT_REJECTION} :: Order price is below the lower circuit limit of {lower}."
    return None
