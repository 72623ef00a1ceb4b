"""Live prices for the app: each instrument has a channel-layer group; a user's socket
joins the groups of the instruments their running strategies trade, and the tick
consumer sends a throttled price update to each group. Also the last prices themselves,
as the tick script keeps them in Redis, for whoever values a position."""

import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from strategies.models import Strategy

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")


def price_group(instrument: str) -> str:
    """A channel-layer group name for an instrument: groups allow only ASCII letters,
    digits, ``-``, ``_`` and ``.``, so ``NSE:M&M`` becomes ``price.NSE.M_26M``."""
    exchange, _, symbol = instrument.partition(":")
    safe = [_UNSAFE.sub(lambda m: f"_{ord(m.group()):02X}", part) for part in (exchange, symbol)]
    return "price." + ".".join(safe)


def instruments_watched_by(*, user_id: int) -> set[str]:
    """The instruments of the user's running strategies: whose prices their app sees."""
    rows = Strategy.objects.filter(owner_id=user_id, status=Strategy.Status.RUNNING).values_list("exchange", "symbol")
    return {f"{exchange}:{symbol}" for exchange, symbol in rows}


def last_prices(*, instruments: Iterable[str]) -> dict[str, Decimal]:
    """The last traded price of each instrument the feed has priced (one round trip), as the tick
    script stores it; an instrument without a price yet is left out."""
    names = sorted(set(instruments))
    if not names:
        return {}
    pipeline = get_redis().pipeline(transaction=False)
    for name in names:
        pipeline.hget(redis_keys.instrument_price(name), "price")
    prices: dict[str, Decimal] = {}
    for name, raw in zip(names, pipeline.execute(), strict=True):
        if raw:
            try:
                price = Decimal(str(raw))
            except InvalidOperation:
                continue
            if price.is_finite() and price > 0:
                prices[name] = price
    return prices
