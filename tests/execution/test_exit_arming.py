"""A BUY's fill arms the position's target and trailing stop with its stop (paper broker):
the target a percentage above the fill, the trail from the fill, the stop the higher of the
fixed one and the trail's; and the exit that ends the position takes them all out."""

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from execution.services import strategy_buy_execute, strategy_sell_execute
from strategies.exit_index import targets_armed, trails_armed
from strategies.models import Strategy
from strategies.stoploss_index import stoploss_armed
from tests.strategies.factories_scheduling import strategy_create

pytestmark = pytest.mark.django_db

INFY = "NSE:INFY"


@pytest.fixture(autouse=True)
def quick_paper(settings: Any) -> None:
    settings.PAPER_LATENCY_MS = 0


def due(**fields: Any) -> Strategy:
    now = timezone.now()
    return strategy_create(buy_fire_at=now - timedelta(seconds=1), sell_fire_at=now + timedelta(minutes=5), **fields)


def test_a_fill_fixes_and_arms_the_target_and_the_trail_with_the_stop():
    strategy = due(stop_loss_trail_percent=Decimal("0.5"), take_profit_percent=Decimal("2"))  # fixed stop 1% below

    strategy_buy_execute(strategy_id=strategy.pk)

    strategy.refresh_from_db()
    fill = strategy.entry_price
    assert strategy.position == Strategy.Position.BOUGHT and fill is not None
    target = (fill * Decimal("1.02")).quantize(Decimal("0.01"))
    stop = (fill * Decimal("0.995")).quantize(Decimal("0.01"), rounding="ROUND_DOWN")  # the trail's is higher
    assert (strategy.target_price, strategy.stop_trigger_price, strategy.trail_high_price) == (target, stop, fill)
    assert targets_armed(instrument=INFY) == {strategy.pk: Decimal(repr(float(target)))}
    assert stoploss_armed(instrument=INFY) == {strategy.pk: Decimal(repr(float(stop)))}
    assert trails_armed(instrument=INFY) == {strategy.pk: (Decimal(repr(float(fill))), "p|0.50|0")}


def test_the_sell_that_ends_the_position_takes_its_target_and_trail_out():
    strategy = due(stop_loss_trail_points=Decimal("5"), take_profit_price=Decimal("99999"))
    strategy_buy_execute(strategy_id=strategy.pk)

    strategy_sell_execute(strategy_id=strategy.pk, reason="SELL")

    assert targets_armed(instrument=INFY) == {} and trails_armed(instrument=INFY) == {}
    assert stoploss_armed(instrument=INFY) == {}
