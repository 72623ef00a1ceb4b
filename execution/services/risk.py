"""The risk limits: set by the user (for all their accounts, or one account) or an operator,
checked before each BUY claims its position (``buy_risk_check``, in the claim's transaction),
and a refused BUY ending its strategy's run (``buy_refuse``: G1 and an L4 for the user)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection, transaction

from algotrader import redis_keys
from algotrader.users.models import User
from brokers.instruments import find_instrument
from brokers.models import BrokerAccount
from execution.exceptions import RiskLimitExceeded
from execution.models import RiskLimits
from execution.selectors.orders import exchange_day_bounds, exchange_today
from market.prices import last_prices
from monitoring.events import Event
from monitoring.services import alert_raise, emit
from strategies import scheduling
from strategies.models import Strategy

logger = logging.getLogger(__name__)

OPEN_POSITIONS = (Strategy.Position.BUYING, Strategy.Position.BOUGHT, Strategy.Position.EXITING)


def risk_limits_set(*, user: User, account: BrokerAccount | None = None, **limits: Any) -> RiskLimits:
    """Set the user's limits (``account`` None) or one account's, every limit at once (a
    missing or null one is no limit). Under the row lock a BUY's check takes, so a BUY is
    checked against the limits before or after the change, never half of it."""
    values = {name: limits.get(name) for name in RiskLimits.LIMITS}
    with transaction.atomic():
        row, _ = RiskLimits.objects.select_for_update().update_or_create(user=user, account=account, defaults=values)
    logger.info("risk limits set", extra={"user_id": user.pk, "broker_account_id": account.pk if account else None})
    return row


# The limits covering a BUY, locked (FOR UPDATE, the user's row first) so that BUYs of the same
# user (or account) are checked one after another: each sees the intent the previous one wrote.
_LIMITS_SQL = """
SELECT account_id, max_open_positions, max_order_value, max_day_value, max_orders_per_day
FROM execution_risklimits
WHERE user_id = %s AND (account_id IS NULL OR account_id = %s)
ORDER BY account_id NULLS FIRST
FOR UPDATE
"""

# The day so far, for the user over their accounts and for the account alone: open positions,
# BUY entries (a lost order replaced under a new tag counts once), and their value (what filled,
# at its price; a live one at the price it was valued at when claimed).
_DAY_SQL = """
WITH buys AS (
    SELECT account_id, retry_of_id,
           CASE WHEN filled_quantity > 0 THEN filled_quantity * fill_price
                WHEN status IN ('PENDING', 'PLACED', 'UNKNOWN') THEN quantity * COALESCE(reference_price, 0)
                ELSE 0 END AS value
    FROM execution_order
    WHERE account_id IN (SELECT id FROM brokers_brokeraccount WHERE owner_id = %(user)s)
      AND side = 'BUY' AND reason = 'BUY' AND created_at >= %(start)s
)
SELECT
    (SELECT COUNT(*) FROM strategies_strategy WHERE owner_id = %(user)s AND position = ANY(%(open)s)),
    (SELECT COUNT(*) FROM strategies_strategy WHERE broker_account_id = %(account)s AND position = ANY(%(open)s)),
    (SELECT COUNT(*) FROM buys WHERE retry_of_id IS NULL),
    (SELECT COALESCE(SUM(value), 0) FROM buys),
    (SELECT COUNT(*) FROM buys WHERE retry_of_id IS NULL AND account_id = %(account)s),
    (SELECT COALESCE(SUM(value), 0) FROM buys WHERE account_id = %(account)s)
"""


@dataclass(frozen=True)
class _Day:
    open_positions: int
    orders: int
    value: Decimal


def _day_so_far(strategy: Strategy) -> tuple[_Day, _Day]:
    start, _ = exchange_day_bounds(exchange_today())
    with connection.cursor() as cursor:
        cursor.execute(
            _DAY_SQL,
            {
                "user": strategy.owner_id,
                "account": strategy.broker_account_id,
                "start": start,
                "open": [str(position) for position in OPEN_POSITIONS],
            },
        )
        user_open, account_open, user_orders, user_value, account_orders, account_value = cursor.fetchone()
    return (
        _Day(int(user_open), int(user_orders), Decimal(user_value)),
        _Day(int(account_open), int(account_orders), Decimal(account_value)),
    )


def buy_risk_check(strategy: Strategy) -> dict[str, Any]:
    """Raise ``RiskLimitExceeded`` if this BUY would pass a limit of its owner (over all their
    accounts) or of its account (over that account). Runs in the claim's transaction, before
    the intent is written: without limits it is one query. Returns what goes on the order:
    the price it was valued at, when a value limit asked for one."""
    with connection.cursor() as cursor:
        cursor.execute(_LIMITS_SQL, [strategy.owner_id, strategy.broker_account_id])
        rows = [_Limits(*row) for row in cursor.fetchall()]
    if not any(row.on_buy for row in rows):
        return {}  # none, or only a day's loss limit (its halt refuses BUYs)
    user_day, account_day = _day_so_far(strategy)
    price = _buy_price(strategy) if any(row.on_value for row in rows) else None
    for row in rows:
        scope, day = ("account", account_day) if row.account_id is not None else ("user", user_day)
        if row.max_open is not None and day.open_positions + 1 > row.max_open:
            _refuse("max_open_positions", scope, row.max_open, day.open_positions + 1, "open positions")
        if row.max_orders is not None and day.orders + 1 > row.max_orders:
            _refuse("max_orders_per_day", scope, row.max_orders, day.orders + 1, "orders today")
        if not row.on_value:
            continue
        if price is None:
            raise RiskLimitExceeded(
                "BUY refused: no price is known to value it against the value limits",
                limit="max_order_value" if row.max_order_value is not None else "max_day_value",
                scope=scope,
                allowed=str(row.max_order_value if row.max_order_value is not None else row.max_day_value),
                would_be="unknown",
            )
        value = price * strategy.quantity
        if row.max_order_value is not None and value > row.max_order_value:
            _refuse("max_order_value", scope, row.max_order_value, value, "rupees in this order")
        if row.max_day_value is not None and day.value + value > row.max_day_value:
            _refuse("max_day_value", scope, row.max_day_value, day.value + value, "rupees bought today")
    return {"reference_price": price} if price is not None else {}


@dataclass(frozen=True)
class _Limits:
    account_id: int | None
    max_open: int | None
    max_order_value: Decimal | None
    max_day_value: Decimal | None
    max_orders: int | None

    @property
    def on_value(self) -> bool:
        return self.max_order_value is not None or self.max_day_value is not None

    @property
    def on_buy(self) -> bool:
        return self.on_value or self.max_open is not None or self.max_orders is not None


def _buy_price(strategy: Strategy) -> Decimal | None:
    """What the BUY is valued at: the last price, else (no tick yet) the instrument's
    reference price, as the paper broker fills; None for an unknown instrument."""
    instrument = redis_keys.instrument(strategy.exchange, strategy.symbol)
    price = last_prices(instruments=[instrument]).get(instrument)
    if price is None:
        known = find_instrument(strategy.exchange, strategy.symbol)
        price = known.reference_price if known is not None else None
    return price


def _refuse(limit: str, scope: str, allowed: Any, would_be: Any, unit: str) -> None:
    whose = "the account's" if scope == "account" else "your"
    raise RiskLimitExceeded(
        f"BUY refused by {whose} risk limit {limit}: it would make {would_be} {unit}, the limit is {allowed}",
        limit=limit,
        scope=scope,
        allowed=str(allowed),
        would_be=str(would_be),
    )


def buy_refuse(strategy: Strategy, refusal: RiskLimitExceeded) -> None:
    """A BUY a limit refused ends its strategy's run as a rejected BUY ends it (S5 REJECTED),
    recorded as G1 with the limit, and the user is alerted (L4)."""
    payload = {
        "strategy_id": strategy.pk,
        "symbol": redis_keys.instrument(strategy.exchange, strategy.symbol),
        **refusal.extra,
    }
    emit(Event.G1_RISK_LIMIT_REFUSED, strategy=strategy, message=refusal.message, payload=payload)
    alert_raise(
        kind="risk_limit",
        key=f"strategy:{strategy.pk}",
        severity="warning",
        strategy=strategy,
        message=refusal.message,
        payload=payload,
    )
    logger.warning("BUY refused by a risk limit", extra={"strategy_id": strategy.pk, **refusal.extra})
    scheduling.strategies_end_unbought(strategy_ids=[strategy.pk])
