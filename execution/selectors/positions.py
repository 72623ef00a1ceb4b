"""Positions and P&L of the user's strategies, computed from their orders' fills: what was
bought and sold at what average price, what is still held, realized P&L, unrealized P&L at the
last price, and the charges estimate. Decimal throughout; rounding is the API's, at display."""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal

from django.db.models import Exists, OuterRef, Q, QuerySet

from algotrader import redis_keys
from algotrader.users.models import User
from execution.charges import ZERO, Charges, Fill, charges_estimate
from execution.models import Order
from execution.selectors.orders import exchange_today
from market.live_pnl import OpenPosition
from market.prices import last_prices
from strategies.exceptions import StrategyNotFound
from strategies.models import Strategy


@dataclass(frozen=True)
class Position:
    strategy: Strategy
    bought_quantity: int
    bought_value: Decimal
    sold_quantity: int
    sold_value: Decimal
    last_price: Decimal | None
    charges: Charges

    @property
    def instrument(self) -> str:
        return redis_keys.instrument(self.strategy.exchange, self.strategy.symbol)

    @property
    def held_quantity(self) -> int:
        """Negative when more was sold than bought (a lost order's excess, squared off)."""
        return self.bought_quantity - self.sold_quantity

    @property
    def average_buy_price(self) -> Decimal | None:
        return self.bought_value / self.bought_quantity if self.bought_quantity else None

    @property
    def average_sell_price(self) -> Decimal | None:
        return self.sold_value / self.sold_quantity if self.sold_quantity else None

    @property
    def cost_price(self) -> Decimal | None:
        """The average price the held quantity was opened at: bought if long, sold if short."""
        return self.average_buy_price if self.held_quantity > 0 else self.average_sell_price

    @property
    def realized_pnl(self) -> Decimal:
        matched = min(self.bought_quantity, self.sold_quantity)
        if matched == 0:
            return ZERO
        if self.bought_quantity == self.sold_quantity:  # closed: exactly what came in less what went out
            return self.sold_value - self.bought_value
        assert self.average_buy_price is not None and self.average_sell_price is not None
        return matched * (self.average_sell_price - self.average_buy_price)

    @property
    def unrealized_pnl(self) -> Decimal | None:
        """Zero when flat; None when held and no price is known yet."""
        if self.held_quantity == 0:
            return ZERO
        if self.last_price is None or self.cost_price is None:
            return None
        return (self.last_price - self.cost_price) * self.held_quantity

    @property
    def net_pnl(self) -> Decimal:
        return self.realized_pnl + (self.unrealized_pnl or ZERO) - self.charges.total


@dataclass(frozen=True)
class DaySummary:
    day: date
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    charges: Charges
    strategies_by_status: dict[str, int]
    open_positions: int

    @property
    def net_pnl(self) -> Decimal:
        return self.realized_pnl + self.unrealized_pnl - self.charges.total


def _fills_of(strategy_ids: Iterable[int]) -> dict[int, list[Fill]]:
    """Every executed quantity of the strategies' orders, whatever became of the order after
    (a partial fill then cancelled, a lost order that surfaced filled): one query."""
    rows = Order.objects.filter(
        strategy_id__in=list(strategy_ids), filled_quantity__gt=0, fill_price__isnull=False
    ).values_list("strategy_id", "side", "filled_quantity", "fill_price")
    fills: dict[int, list[Fill]] = defaultdict(list)
    for strategy_id, side, quantity, price in rows.order_by("id"):
        assert price is not None  # filtered above
        fills[strategy_id].append(Fill(side=side, quantity=quantity, price=price))
    return fills


def positions_of(strategies: Sequence[Strategy], *, priced: bool = True) -> list[Position]:
    """The positions of the given strategies, in their order: one query for the fills and one
    Redis round trip for the last prices of those still held."""
    fills = _fills_of(strategy.pk for strategy in strategies)
    built = []
    for strategy in strategies:
        own = fills.get(strategy.pk, [])
        buys = [fill for fill in own if fill.side == Order.Side.BUY]
        sells = [fill for fill in own if fill.side == Order.Side.SELL]
        built.append(
            Position(
                strategy=strategy,
                bought_quantity=sum(fill.quantity for fill in buys),
                bought_value=sum((fill.value for fill in buys), ZERO),
                sold_quantity=sum(fill.quantity for fill in sells),
                sold_value=sum((fill.value for fill in sells), ZERO),
                last_price=None,
                charges=charges_estimate(fills=own, exchange=strategy.exchange, day=strategy.trade_date),
            )
        )
    if not priced:
        return built
    prices = last_prices(instruments=[p.instrument for p in built if p.held_quantity != 0])
    return [replace(position, last_price=prices.get(position.instrument)) for position in built]


def position_strategies(*, user: User, day: date | None = None) -> QuerySet[Strategy]:
    """The user's strategies that traded (at least one fill), newest first."""
    filled = Order.objects.filter(strategy=OuterRef("pk"), filled_quantity__gt=0)
    strategies = Strategy.objects.filter(owner=user).filter(Exists(filled))
    if day is not None:
        strategies = strategies.filter(trade_date=day)
    return strategies.order_by("-created_at", "-id")


def position_get(*, user: User, strategy_id: int) -> Position:
    """One strategy's position (all zeros before its first fill); another user's is a 404."""
    strategy = Strategy.objects.filter(owner=user, pk=strategy_id).first()
    if strategy is None:
        raise StrategyNotFound()
    [position] = positions_of([strategy])
    return position


def day_summary(*, user: User, day: date) -> DaySummary:
    """The user's trading day: P&L and charges over the strategies of that trade date, and how
    many of them are in each state."""
    strategies = list(Strategy.objects.filter(owner=user, trade_date=day).order_by("id"))
    by_status = dict.fromkeys(Strategy.Status.values, 0)
    for strategy in strategies:
        by_status[strategy.status] += 1
    positions = positions_of(strategies)
    return DaySummary(
        day=day,
        realized_pnl=sum((p.realized_pnl for p in positions), ZERO),
        unrealized_pnl=sum((p.unrealized_pnl or ZERO for p in positions), ZERO),
        charges=sum((p.charges for p in positions), Charges()),
        strategies_by_status=by_status,
        open_positions=sum(1 for p in positions if p.held_quantity != 0),
    )


def open_positions(user_id: int) -> list[OpenPosition]:
    """The user's positions still held by strategies not yet ended, for the socket's live P&L
    (registered with ``market.live_pnl``); read when the socket opens and when an order settles."""
    today = exchange_today()
    # An ended strategy holds nothing, unless its exit failed today: then the socket shows it too.
    strategies = list(
        Strategy.objects.filter(owner_id=user_id).filter(~Q(status=Strategy.Status.EXITED) | Q(trade_date=today))
    )
    return [
        OpenPosition(
            strategy_id=position.strategy.pk,
            instrument=position.instrument,
            quantity=position.held_quantity,
            cost_price=position.cost_price,
        )
        for position in positions_of(strategies, priced=False)
        if position.held_quantity != 0 and position.cost_price is not None
    ]
