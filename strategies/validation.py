"""The rules a strategy's plan must satisfy before it is created or updated (U4, U5).
Every refusal names its field, so the app can show it next to the input."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache

from algotrader import redis_keys
from algotrader.exceptions import ValidationFailed
from algotrader.redis_client import get_redis
from brokers.adapters.registry import adapter_for
from brokers.models import BrokerAccount
from brokers.selectors import broker_account_can_enter
from strategies import calendar
from strategies.models import Venue

MIN_HOLD = timedelta(minutes=1)
INSTRUMENTS_CACHE_SECONDS = 6 * 3600


@dataclass(frozen=True)
class Plan:
    exchange: str
    symbol: str
    quantity: int
    buy_at: time
    sell_at: time
    stop_loss_price: Decimal | None
    stop_loss_percent: Decimal | None
    trade_date: date | None  # None: the first trading day on which the buy is still ahead
    stop_loss_trail_percent: Decimal | None = None
    stop_loss_trail_points: Decimal | None = None
    take_profit_percent: Decimal | None = None
    take_profit_price: Decimal | None = None


@dataclass(frozen=True)
class ResolvedPlan:
    venue: str
    trade_date: date
    buy_fire_at: datetime
    sell_fire_at: datetime


def venue_for(account: BrokerAccount, exchange: str) -> str:
    """Whose calendar a strategy follows: the simulated exchange for paper accounts (and
    for Kite when it points at the simulator), the real exchange otherwise."""
    if account.kind == BrokerAccount.Kind.PAPER or settings.KITE_SIMULATED:
        return Venue.SIM.value
    return exchange


def tradable_symbols(account: BrokerAccount, exchange: str) -> frozenset[str]:
    """The broker's instrument list for an exchange, cached: it changes once a day."""
    key = f"instruments:{account.kind}:{exchange}"
    symbols = cache.get(key)
    if symbols is None:
        symbols = frozenset(i.symbol for i in adapter_for(account).instruments(exchange))
        cache.set(key, symbols, INSTRUMENTS_CACHE_SECONDS)
    return frozenset(symbols)


def fire_instants(venue: str, trade_date: date, buy_at: time, sell_at: time) -> tuple[datetime, datetime]:
    zone = calendar.venue_zone(venue)
    return datetime.combine(trade_date, buy_at, zone), datetime.combine(trade_date, sell_at, zone)


def _resolve_date(venue: str, plan: Plan, now: datetime) -> date:
    if plan.trade_date is not None:
        return plan.trade_date
    today = calendar.today(venue, now)
    if calendar.is_trading_day(venue, today) and fire_instants(venue, today, plan.buy_at, plan.sell_at)[0] > now:
        return today
    return calendar.next_trading_day(venue, today)


def validate_plan(
    *,
    account: BrokerAccount,
    plan: Plan,
    now: datetime,
    buy_must_be_ahead: bool = True,
    entering: bool = True,
    against_last_price: frozenset[str] = frozenset(),
) -> ResolvedPlan:
    """``entering``: the BUY is still to come, so the account must be able to trade now.
    ``against_last_price``: the fields being set now (a price that moved since does not
    refuse an unrelated change), of ``stop_loss_price`` and ``take_profit_price``, that must
    lie on their side of the instrument's last price."""
    errors: dict[str, list[str]] = {}

    def refuse(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    if entering and not broker_account_can_enter(account):
        refuse("broker_account", f"This broker account cannot trade now (status: {account.status}).")
    if plan.symbol not in tradable_symbols(account, plan.exchange):
        refuse("symbol", f"{plan.symbol} is not traded on {plan.exchange} at this broker.")
    if plan.quantity <= 0:
        refuse("quantity", "Quantity must be at least 1.")
    if (plan.stop_loss_price is None) == (plan.stop_loss_percent is None):
        refuse("stop_loss", "Give the stop-loss either as a price or as a percentage, exactly one of them.")
    elif plan.stop_loss_price is not None and plan.stop_loss_price <= 0:
        refuse("stop_loss_price", "The stop-loss price must be positive.")
    elif plan.stop_loss_percent is not None and not Decimal(0) < plan.stop_loss_percent < Decimal(100):
        refuse("stop_loss_percent", "The stop-loss percentage must be between 0 and 100.")

    _check_exits(plan, refuse, against_last_price)

    venue = venue_for(account, plan.exchange)
    trade_date = _resolve_date(venue, plan, now)
    session = calendar.session_on(venue, trade_date)
    buy_fire_at, sell_fire_at = fire_instants(venue, trade_date, plan.buy_at, plan.sell_at)
    if session is None:
        refuse("trade_date", f"{trade_date:%Y-%m-%d} is not a trading day on {venue}.")
    else:
        if not session.contains(buy_fire_at):
            refuse("buy_at", f"The buy time must be inside the session ({session.opens:%H:%M}-{session.closes:%H:%M}).")
        if not session.contains(sell_fire_at):
            refuse(
                "sell_at", f"The sell time must be inside the session ({session.opens:%H:%M}-{session.closes:%H:%M})."
            )
    if sell_fire_at - buy_fire_at < MIN_HOLD:
        refuse("sell_at", "The sell time must be at least one minute after the buy time.")
    if trade_date < calendar.today(venue, now):
        refuse("trade_date", "The trade date has passed.")
    horizon = calendar.today(venue, now) + timedelta(days=settings.STRATEGY_DAYS_AHEAD_MAX)
    if trade_date > horizon:
        refuse("trade_date", f"The trade date can be at most {settings.STRATEGY_DAYS_AHEAD_MAX} days ahead.")
    elif buy_must_be_ahead and buy_fire_at <= now:
        refuse("buy_at", "The buy time has already passed.")

    if errors:
        raise ValidationFailed(fields=errors)
    return ResolvedPlan(venue=venue, trade_date=trade_date, buy_fire_at=buy_fire_at, sell_fire_at=sell_fire_at)


def last_price(exchange: str, symbol: str) -> Decimal | None:
    """The instrument's last traded price as the tick consumer keeps it; None if none is known
    (not subscribed yet): then only what the plan itself says can be checked."""
    price = get_redis().hget(redis_keys.price(exchange, symbol), "price")
    return Decimal(str(price)) if price else None


def _check_exits(plan: Plan, refuse: Callable[[str, str], None], against_last_price: frozenset[str]) -> None:
    """The trailing stop and the target: one kind each, in range, and on the right side of the
    entry reference (the last price known now) and of each other."""
    trail_percent, trail_points = plan.stop_loss_trail_percent, plan.stop_loss_trail_points
    if trail_percent is not None and trail_points is not None:
        refuse("stop_loss_trail", "Give the trailing stop either as a percentage or in points, not both.")
    elif trail_percent is not None and not Decimal(0) < trail_percent < Decimal(100):
        refuse("stop_loss_trail_percent", "The trailing stop percentage must be between 0 and 100.")
    elif trail_points is not None and trail_points <= 0:
        refuse("stop_loss_trail_points", "The trailing stop distance must be positive.")
    target_percent, target_price = plan.take_profit_percent, plan.take_profit_price
    if target_percent is not None and target_price is not None:
        refuse("take_profit", "Give the target either as a percentage or as a price, not both.")
        return
    if target_percent is not None and target_percent <= 0:
        refuse("take_profit_percent", "The target percentage must be positive.")
    if target_price is not None and target_price <= 0:
        refuse("take_profit_price", "The target price must be positive.")
        return
    checked = {"stop_loss_price", "take_profit_price"} & against_last_price
    reference = last_price(plan.exchange, plan.symbol) if checked else None
    if reference is not None:
        if "take_profit_price" in checked and target_price is not None and target_price <= reference:
            refuse("take_profit_price", f"The target price must be above the last price ({reference}).")
        if "stop_loss_price" in checked and plan.stop_loss_price is not None and plan.stop_loss_price >= reference:
            refuse("stop_loss_price", f"The stop-loss price must be below the last price ({reference}).")
    if target_price is not None and plan.stop_loss_price is not None and target_price <= plan.stop_loss_price:
        refuse("take_profit_price", "The target price must be above the stop-loss price.")
