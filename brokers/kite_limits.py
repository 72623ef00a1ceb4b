"""Kite Connect's published limits in one table: the Kite simulator enforces them and the
engine's own order-rate limiter (``execution.services.safety``) takes its Kite default from
them, so the engine is built to the figures the broker holds it to.

Sources (December 2026): the API rate limit table of Kite Connect v3's documentation
(https://kite.trade/docs/connect/v3/exceptions/#api-rate-limit: quote 1 r/s, historical
3 r/s, order placement 10 r/s, all other endpoints 10 r/s; past them HTTP 429), Zerodha's
answer on the Kite forum (https://kite.trade/forum/discussion/comment/52882/: 10 orders a
second and 400 a minute per account, 5,000 orders a day per user across segments and
varieties; older posts say 200 a minute and 3,000 a day), and Zerodha's per-order cap of 25
modifications ("Maximum allowed order modifications exceeded" on the 26th)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class KiteLimits:
    quote_per_second: int = 1  # /quote, /quote/ohlc and /quote/ltp together
    historical_per_second: int = 3
    orders_per_second: int = 10  # order placement
    other_per_second: int = 10  # every other endpoint: reads, modify, cancel
    orders_per_minute: int = 400
    orders_per_day: int = 5000
    modifications_per_order: int = 25


KITE_LIMITS: Final = KiteLimits()

QUOTE: Final = "quote"
HISTORICAL: Final = "historical"
ORDERS: Final = "orders"
OTHER: Final = "other"

# Which per-second budget an endpoint (named after the official client's method) draws on.
ENDPOINT_BUCKETS: Final = {
    "quote": QUOTE,
    "ohlc": QUOTE,
    "ltp": QUOTE,
    "historical_data": HISTORICAL,
    "place_order": ORDERS,
}


def bucket_of(endpoint: str) -> str:
    return ENDPOINT_BUCKETS.get(endpoint, OTHER)


def per_second(bucket: str, limits: KiteLimits = KITE_LIMITS) -> int:
    return {
        QUOTE: limits.quote_per_second,
        HISTORICAL: limits.historical_per_second,
        ORDERS: limits.orders_per_second,
        OTHER: limits.other_per_second,
    }[bucket]
