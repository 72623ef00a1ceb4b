"""Strategies made directly with the ORM for the scheduling tests and the benchmark:
on the always-open SIM venue, firing at the instants given."""

from datetime import datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from algotrader.users.models import User
from brokers.models import BrokerAccount
from strategies.models import Strategy
from tests.factories import BrokerAccountFactory

SIM_ZONE = ZoneInfo("Asia/Kolkata")  # the SIM session's zone, as seeded


def strategy_build(
    *,
    owner: User,
    account: BrokerAccount,
    buy_fire_at: datetime,
    sell_fire_at: datetime,
    status: str = Strategy.Status.RUNNING,
    **fields: Any,
) -> Strategy:
    buy_local, sell_local = buy_fire_at.astimezone(SIM_ZONE), sell_fire_at.astimezone(SIM_ZONE)
    sell_at = sell_local.time()
    if sell_local.date() != buy_local.date():
        # Instants either side of the zone's midnight (a test run between 00:00 and 02:00
        # there) have no same-day wall-clock pair, and the buy_before_sell constraint wants
        # one; the scheduler fires by the instants, so the SELL's wall clock ends the day.
        sell_at = time.max
    return Strategy(
        owner=owner,
        broker_account=account,
        venue="SIM",
        exchange="NSE",
        symbol="INFY",
        quantity=1,
        trade_date=buy_local.date(),
        buy_at=buy_local.time(),
        sell_at=sell_at,
        stop_loss_percent=Decimal("1.00"),
        status=status,
        buy_fire_at=buy_fire_at,
        sell_fire_at=sell_fire_at,
        **fields,
    )


def strategy_create(
    *, buy_fire_at: datetime, sell_fire_at: datetime, account: BrokerAccount | None = None, **fields: Any
) -> Strategy:
    if account is None:
        account = BrokerAccountFactory.create()
    strategy = strategy_build(
        owner=account.owner, account=account, buy_fire_at=buy_fire_at, sell_fire_at=sell_fire_at, **fields
    )
    strategy.save()
    return strategy
