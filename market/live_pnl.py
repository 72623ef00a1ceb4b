"""Live P&L on the app's socket: the open positions of a user, as the layer that knows them
(execution) registers them here, so that each price push carries their unrealized P&L from
figures the socket holds in memory: no database query per tick."""

from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

CENT = Decimal("0.01")


@dataclass(frozen=True)
class OpenPosition:
    """A strategy's position while held: ``quantity`` is negative for shares sold beyond those
    bought (an excess square-off), and ``cost_price`` the average price it was opened at."""

    strategy_id: int
    instrument: str
    quantity: int
    cost_price: Decimal

    def unrealized_pnl(self, price: Decimal) -> Decimal:
        return (price - self.cost_price) * self.quantity


OpenPositionsSource = Callable[[int], list[OpenPosition]]
_sources: dict[str, OpenPositionsSource] = {}


def open_positions_source_register(*, name: str, source: OpenPositionsSource) -> None:
    """Called from a higher layer's ``AppConfig.ready``: ``source(user_id)`` lists that user's
    open positions."""
    _sources[name] = source


def open_positions_of(*, user_id: int) -> dict[str, list[OpenPosition]]:
    """The user's open positions by instrument, from every registered source."""
    by_instrument: dict[str, list[OpenPosition]] = {}
    for source in _sources.values():
        for position in source(user_id):
            by_instrument.setdefault(position.instrument, []).append(position)
    return by_instrument


def positions_priced(positions: list[OpenPosition], price: str) -> list[dict[str, Any]]:
    """What a price push adds for the positions in its instrument: each one's unrealized P&L at
    the pushed price, rounded once, here, for display."""
    last = Decimal(price)
    if not last.is_finite():
        return []
    return [
        {
            "strategy_id": position.strategy_id,
            "quantity": position.quantity,
            "unrealized_pnl": str(position.unrealized_pnl(last).quantize(CENT, rounding=ROUND_HALF_UP)),
        }
        for position in positions
    ]
