"""The record of a raised trailing stop (P4, ``record_trail_task``): it raises a held
position's recorded stop and high, so that a rebuild arms the moved stop; never lowers it,
never touches a position no longer held, and a task run twice records once."""

from decimal import Decimal

import pytest

from algotrader.queues import CeleryQueue, TaskName
from monitoring.models import EventLog
from strategies.models import Strategy
from strategies.tasks import record_trail_task
from tests.market.helpers import queued_tasks, running_strategy

pytestmark = pytest.mark.django_db


def held() -> Strategy:
    strategy = running_strategy(stop_loss_trail_percent=Decimal("2"))
    Strategy.objects.filter(pk=strategy.pk).update(
        position=Strategy.Position.BOUGHT,
        entry_price=Decimal("100"),
        stop_trigger_price=Decimal("98"),
        trail_high_price=Decimal("100"),
    )
    return strategy


def recorded(strategy: Strategy) -> tuple[Decimal | None, Decimal | None]:
    strategy.refresh_from_db()
    return strategy.trail_high_price, strategy.stop_trigger_price


def p4s() -> list[EventLog]:
    return list(EventLog.objects.filter(code="P4").order_by("id"))


def test_a_raise_is_recorded_once_with_p4_however_often_its_task_runs():
    strategy = held()

    record_trail_task(strategy.pk, "105.0", "102.9")
    record_trail_task(strategy.pk, "105.0", "102.9")

    assert recorded(strategy) == (Decimal("105"), Decimal("102.9"))
    [p4] = p4s()
    assert p4.strategy_id == strategy.pk and p4.user_id == strategy.owner_id
    assert p4.payload["stop_price"] == "102.9" and p4.payload["high_price"] == "105.0"


def test_a_late_record_never_lowers_the_stop():
    strategy = held()
    record_trail_task(strategy.pk, "110.0", "107.8")

    record_trail_task(strategy.pk, "105.0", "102.9")  # sent before, run after

    assert recorded(strategy) == (Decimal("110"), Decimal("107.8"))
    assert len(p4s()) == 1


def test_a_position_no_longer_held_is_not_recorded():
    strategy = held()
    Strategy.objects.filter(pk=strategy.pk).update(position=Strategy.Position.EXITING)

    record_trail_task(strategy.pk, "105.0", "102.9")

    assert recorded(strategy) == (Decimal("100"), Decimal("98"))
    assert p4s() == []


def test_a_recorded_raise_sends_the_protective_move_after_commit_and_only_when_asked(
    django_capture_on_commit_callbacks,
):
    strategy = held()

    with django_capture_on_commit_callbacks(execute=True):
        record_trail_task(strategy.pk, "105.0", "102.9", True)
        record_trail_task(strategy.pk, "105.0", "102.9", True)  # nothing raised: nothing sent
        record_trail_task(strategy.pk, "110.0", "107.8", False)  # past the modification budget

    moves = [args for name, args in queued_tasks(CeleryQueue.ORDERS) if name == TaskName.MOVE_PROTECTIVE_STOP.value]
    assert moves == [[strategy.pk, "102.9"]]
    assert recorded(strategy) == (Decimal("110.0"), Decimal("107.8"))
