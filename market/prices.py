"""Live prices for the app: each instrument has a channel-layer group; a user's socket
joins the groups of the instruments their running strategies trade, and the tick
consumer sends a throttled price update to each group."""

import re

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
