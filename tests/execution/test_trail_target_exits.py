"""Targets and trailing stops in the execution engine (paper broker): a BUY's fill arms them
with the stop (the target a percentage above the fill, the trail from the fill, the stop the
higher of the fixed one and the trail's), the exit that ends the position takes them all out,
a target's exit carries its reason, one exit per position whichever fires, and a target
whose task was lost is run by settlement as a target."""

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from execution import tasks
from execution.recovery.settlement import orders_settle_interrupted
from execution.services import strategy_buy_execute, strategy_sell_execute, strategy_stoploss_execute
from monitoring.events import Event
from monitoring.models import EventLog
from monitoring.services import emit
from strategies.exit_index import targets_armed, trails_armed
from strategies.models import Strategy
from strategies.stoploss_index import stoploss_armed
from tests.execution.helpers import orders, paper_book
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


def test_a_target_and_a_stop_firing_for_one_position_place_one_exit_the_first_one(make_strategy):
    strategy = make_strategy(position="BOUGHT")

    strategy_stoploss_execute(strategy_id=strategy.pk, reason="TARGET")
    tasks.execute_stoploss_task.apply((strategy.pk,))  # its stop, crossed on the same tick: claims nothing

    strategy.refresh_from_db()
    assert (strategy.status, strategy.position, strategy.exit_reason) == ("EXITED", "SOLD", "TARGET")
    assert [(o.reason, o.status) for o in orders(strategy)] == [("TARGET", "COMPLETE")]
    assert [o.side for o in paper_book(strategy)] == ["SELL"]


def test_a_trailed_stops_task_claims_the_exit_as_trail(make_strategy):
    strategy = make_strategy(position="BOUGHT")

    tasks.execute_stoploss_task.apply((strategy.pk,), {"reason": "TRAIL"})  # the fill is followed elsewhere

    strategy.refresh_from_db()
    assert (strategy.position, strategy.exit_reason) == ("EXITING", "TRAIL")
    assert [o.reason for o in orders(strategy)] == ["TRAIL"]


def test_a_trailed_stops_exit_ends_the_position_as_exited_by_sl(make_strategy):
    strategy = make_strategy(position="BOUGHT")

    strategy_stoploss_execute(strategy_id=strategy.pk, reason="TRAIL")

    strategy.refresh_from_db()
    assert (strategy.status, strategy.position, strategy.exit_reason) == ("EXITED", "EXITED_BY_SL", "TRAIL")


def test_a_target_whose_task_was_lost_is_run_by_settlement_as_a_target(make_strategy, settings):
    settings.LOST_TASK_AFTER_SECONDS = 5
    strategy = make_strategy(position="BOUGHT")
    emit(Event.P5_TARGET_REACHED, strategy=strategy, payload={"strategy_id": strategy.pk})
    EventLog.objects.filter(code="P5").update(created_at=timezone.now() - timedelta(seconds=6))

    orders_settle_interrupted()

    strategy.refresh_from_db()
    assert strategy.exit_reason == "TARGET"
    assert [o.reason for o in orders(strategy)] == ["TARGET"]
