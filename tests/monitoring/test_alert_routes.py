"""Every L4 of the engine goes through ``alert_raise``: one alert per incident whatever
how often its cause repeats, the L4 still on the user's timeline, and the incidents that
end by themselves resolved by the path that sees them end."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone

from brokers import services as broker_services
from brokers.services import broker_account_mark_token_expired
from execution import services as execution_services
from execution.services import safety, strategy_buy_execute
from execution.tasks import execute_buy_task
from monitoring.models import Alert, EventLog
from strategies import scheduling
from strategies.models import Strategy
from tests.brokers.test_account_services import SessionAdapter
from tests.execution.conftest import make_strategy, quick_execution
from tests.factories import BrokerAccountFactory
from tests.strategies.factories_scheduling import strategy_create

__all__ = ["make_strategy", "quick_execution"]

pytestmark = pytest.mark.django_db


def alerts(kind: str) -> list[Alert]:
    return list(Alert.objects.filter(kind=kind).order_by("id"))


def test_an_expired_token_is_one_alert_resolved_by_the_next_login(monkeypatch):
    account = BrokerAccountFactory.create(kite=True)

    broker_account_mark_token_expired(account=account, reason="TokenException")
    broker_account_mark_token_expired(account=account, reason="TokenException")
    [alert] = alerts("broker_token_expired")
    assert (alert.key, alert.user_id, alert.is_open) == (f"account:{account.pk}", account.owner_id, True)

    monkeypatch.setattr("brokers.services.adapter_for", SessionAdapter)
    with time_machine.travel(datetime(2026, 11, 24, 9, 5, tzinfo=ZoneInfo("Asia/Kolkata")), tick=False):
        broker_services.broker_account_create_session(account=account, request_token="good")

    alert.refresh_from_db()
    assert alert.resolved_at is not None
    states = [e.payload["state"] for e in EventLog.objects.filter(user=account.owner, code="L4").order_by("id")]
    assert states == ["open", "resolved"]


def test_a_safety_abort_is_one_alert_until_entries_resume():
    account = BrokerAccountFactory.create()

    safety.account_safety_abort(account=account, reason="20 broker errors within 60 s")
    safety.account_safety_abort(account=account, reason="20 broker errors within 60 s")
    [alert] = alerts("safety_abort")
    assert alert.is_open and alert.user_id == account.owner_id

    safety.entries_resume(account=account)

    alert.refresh_from_db()
    assert alert.resolved_at is not None and alert.resolution == "entries resumed"


def test_a_rejected_buy_is_one_order_alert_with_its_order_and_the_l4_on_the_timeline(make_strategy):
    strategy = make_strategy()
    Strategy.objects.filter(pk=strategy.pk).update(symbol="NOSUCHSYMBOL")  # the paper broker refuses it

    order = strategy_buy_execute(strategy_id=strategy.pk)

    assert order is not None
    [alert] = alerts("order_failed")  # raised by the pipeline; the position's own alert is the same incident
    assert (alert.key, alert.strategy_id, alert.severity) == (f"order:{order.pk}", strategy.pk, "warning")
    [l4] = EventLog.objects.filter(strategy=strategy, code="L4")
    assert (l4.order_id, l4.payload["alert_id"], l4.user_id) == (order.pk, alert.pk, strategy.owner_id)


def test_late_buys_of_one_instant_are_one_operator_alert_and_an_l4_per_strategy(settings):
    settings.BUY_GRACE_SECONDS = 30
    due = timezone.now().replace(microsecond=0) - timedelta(seconds=45)
    late = [strategy_create(buy_fire_at=due, sell_fire_at=due + timedelta(minutes=5)) for _ in range(3)]

    scheduling.fire_due(source="sweep")

    [alert] = alerts("buy_late")
    assert alert.user_id is None and alert.payload["count"] == 3
    assert sorted(alert.payload["strategies"]) == sorted(s.pk for s in late)
    for strategy in late:
        assert EventLog.objects.filter(strategy=strategy, code="L4", user=strategy.owner).count() == 1


def test_a_crashed_order_task_is_a_strategy_crash_alert(make_strategy, monkeypatch):
    strategy = make_strategy()

    def crash(*, strategy_id: int, hand_off: bool = False) -> None:
        raise RuntimeError("worker bug")

    monkeypatch.setattr(execution_services, "strategy_buy_execute", crash)

    result = execute_buy_task.apply(args=(strategy.pk,))
    execute_buy_task.apply(args=(strategy.pk,))

    assert result.state == "FAILURE"
    [alert] = alerts("strategy_crash")
    assert (alert.key, alert.strategy_id, alert.user_id) == (f"strategy:{strategy.pk}", strategy.pk, strategy.owner_id)
    assert "RuntimeError: worker bug" in alert.message
