"""Execution tests: short retry windows, a quick paper broker, strategies ready to trade
(RUNNING on the always-open SIM venue, BUY due now), and the Kite simulator."""

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from brokers.kite_sim import KiteSimulator, SimAccount
from brokers.models import BrokerAccount
from strategies.models import Strategy
from tests.brokers.kite_sim_fixtures import kite_sim, sim_account
from tests.factories import BrokerAccountFactory
from tests.strategies.factories_scheduling import strategy_create

__all__ = ["kite_sim", "sim_account"]


@pytest.fixture(autouse=True)
def quick_execution(settings: Any) -> None:
    settings.PAPER_LATENCY_MS = 0
    settings.ORDER_FOLLOW_SECONDS = 5.0
    settings.ORDER_UNKNOWN_GRACE_SECONDS = 0.5
    settings.ORDER_RETRY_SECONDS_BUY = 1.0
    settings.ORDER_RETRY_SECONDS_SELL = 2.0
    settings.ORDER_RETRY_SECONDS_STOPLOSS = 3.0
    settings.ORDER_RETRY_BACKOFF_MAX_SECONDS = 0.1
    # The engine as it is with protective stops off (today's exits, exactly); the protective
    # stop's own tests turn it on (``protective_on``).
    settings.PROTECTIVE_STOPS = False


@pytest.fixture
def protective_on(settings: Any) -> None:
    settings.PROTECTIVE_STOPS = True
    settings.PROTECTIVE_POLL_SECONDS = 0.5


StrategyMaker = Callable[..., Strategy]


@pytest.fixture
def make_strategy() -> StrategyMaker:
    """A RUNNING strategy whose BUY is due now; ``position=BOUGHT`` gives one holding shares."""

    def make(account: BrokerAccount | None = None, quantity: int = 1, **fields: Any) -> Strategy:
        now = timezone.now()
        if fields.get("position") == Strategy.Position.BOUGHT:
            fields.setdefault("entry_price", Decimal("1540.20"))
            fields.setdefault("stop_trigger_price", Decimal("1524.80"))
        strategy = strategy_create(
            buy_fire_at=now - timedelta(seconds=1), sell_fire_at=now + timedelta(minutes=5), account=account, **fields
        )
        if quantity != 1:  # the scheduling factory plans one share
            Strategy.objects.filter(pk=strategy.pk).update(quantity=quantity)
            strategy.quantity = quantity
        return strategy

    return make


@pytest.fixture
def kite_account(settings: Any, kite_sim: KiteSimulator, sim_account: SimAccount) -> BrokerAccount:
    settings.KITE_API_ROOT = kite_sim.api_root
    settings.KITE_WS_ROOT = kite_sim.ws_root
    account: BrokerAccount = BrokerAccountFactory.create(
        kite=True,
        api_key=sim_account.api_key,
        api_secret=sim_account.api_secret,
        access_token=sim_account.access_token,
    )
    return account
