"""Operators' Stop and Exit now in admin act through the strategy services (their
events, their Redis clean-up, the exit task), answer each strategy with its own
message, and turn refusals into messages, never errors. The calendar is editable."""

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from strategies import services, slots
from strategies.models import MarketHoliday, Strategy
from tests.factories import BrokerAccountFactory, UserFactory
from tests.strategies.factories_scheduling import strategy_create
from tests.strategies.scheduling_helpers import declare_queues, queued

pytestmark = pytest.mark.django_db

IST = ZoneInfo("Asia/Kolkata")
MONDAY_10AM = datetime(2026, 11, 23, 10, 0, tzinfo=IST)
CHANGELIST = "/admin/strategies/strategy/"
SELL = "execution.tasks.execute_sell_task"


@pytest.fixture
def travel():
    with time_machine.travel(MONDAY_10AM, tick=True) as traveller:
        yield traveller


@pytest.fixture
def operator() -> Client:
    client = Client()
    client.force_login(UserFactory.create(is_staff=True, is_superuser=True))
    return client


def running_strategy(**fields) -> Strategy:
    """A strategy started by its owner through the services: runtime state in Redis, BUY scheduled."""
    account = BrokerAccountFactory.create()
    strategy = services.strategy_create(
        user=account.owner,
        broker_account_id=account.pk,
        exchange="NSE",
        symbol="INFY",
        quantity=10,
        buy_at=time(10, 30),
        sell_at=time(15, 0),
        stop_loss_percent=Decimal(2),
    )
    return services.strategy_start(user=account.owner, strategy_id=strategy.pk)


def holding(strategy: Strategy) -> Strategy:
    """As after its BUY filled (the execution tests cover how it gets there)."""
    services.strategy_transition(
        strategy_id=strategy.pk,
        expected={"status": "RUNNING"},
        changes={"position": "BOUGHT", "entry_price": Decimal("1500"), "stop_trigger_price": Decimal("1470")},
    )
    strategy.refresh_from_db()
    return strategy


def act(client: Client, action: str, *strategies: Strategy) -> list[str]:
    response = client.post(CHANGELIST, {"action": action, "_selected_action": [s.pk for s in strategies]}, follow=True)
    assert response.status_code == 200
    return [str(message) for message in response.context["messages"]]


def codes(strategy: Strategy) -> list[str]:
    return list(strategy.events.order_by("id").values_list("code", flat=True))


def test_stop_stops_a_running_strategy_through_the_service(travel, operator):
    strategy = running_strategy()
    assert get_redis().exists(redis_keys.strategy(strategy.pk))
    before = len(codes(strategy))

    said = act(operator, "stop", strategy)

    strategy.refresh_from_db()
    assert (strategy.status, strategy.position) == ("STOPPED", "NONE")
    assert codes(strategy)[before:][:2] == ["U7", "S4"]  # the STOP's own events, first
    assert not get_redis().exists(redis_keys.strategy(strategy.pk))
    assert said == [f"#{strategy.pk} NSE:INFY ({strategy.owner}): stopped by an operator."]
    assert LogEntry.objects.filter(object_id=str(strategy.pk), change_message="stopped by an operator").exists()


def test_stop_of_a_strategy_holding_a_position_sells_it_at_market(travel, operator):
    declare_queues()
    strategy = holding(running_strategy())

    said = act(operator, "stop", strategy)

    strategy.refresh_from_db()
    assert (strategy.status, strategy.position, strategy.exit_reason) == ("STOPPED", "EXITING", "STOP")
    assert [(q.task, q.args, q.kwargs.get("reason")) for q in queued()] == [(SELL, [strategy.pk], "STOP")]
    assert said[0].endswith("stopped by an operator; its position is being sold at market.")


def test_stop_answers_each_strategy_and_refuses_one_that_is_not_running_without_failing(travel, operator):
    running = running_strategy()
    stopped = running_strategy()
    services.strategy_stop(user=stopped.owner, strategy_id=stopped.pk)

    said = act(operator, "stop", running, stopped)

    assert said == [
        f"#{running.pk} NSE:INFY ({running.owner}): stopped by an operator.",
        f"#{stopped.pk} NSE:INFY ({stopped.owner}): refused: The strategy is not running.",
    ]
    running.refresh_from_db()
    assert running.status == "STOPPED"


def test_exit_now_sells_a_held_position_through_the_service(travel, operator):
    declare_queues()
    strategy = holding(running_strategy())
    before = len(codes(strategy))

    said = act(operator, "exit_now", strategy)

    strategy.refresh_from_db()
    assert (strategy.status, strategy.position, strategy.exit_reason) == ("STOPPED", "EXITING", "STOP")
    assert codes(strategy)[before:][:2] == ["U7", "S4"]  # the STOP's own events, first
    assert [(q.task, q.args, q.kwargs.get("reason")) for q in queued()] == [(SELL, [strategy.pk], "STOP")]
    assert said == [
        f"#{strategy.pk} NSE:INFY ({strategy.owner}): exit ordered by an operator; "
        "its position is being sold at market."
    ]


def test_exit_now_refuses_a_strategy_without_a_position_and_changes_nothing(travel, operator):
    declare_queues()
    flat = running_strategy()
    buying = running_strategy()
    services.strategy_transition(strategy_id=buying.pk, expected={}, changes={"position": "BUYING"})

    said = act(operator, "exit_now", flat, buying)

    assert said == [
        f"#{flat.pk} NSE:INFY ({flat.owner}): not exited: it holds no position (use Stop to end its timers).",
        f"#{buying.pk} NSE:INFY ({buying.owner}): not exited: "
        "its BUY is still at the broker; exit once it has filled (or Stop it).",
    ]
    assert list(Strategy.objects.order_by("pk").values_list("status", "position")) == [
        ("RUNNING", "NONE"),
        ("RUNNING", "BUYING"),
    ]
    assert queued() == []


def test_a_staff_member_without_the_change_permission_sees_no_action(travel):
    viewer = UserFactory.create(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_strategy"))
    client = Client()
    client.force_login(viewer)
    strategy = running_strategy()

    page = client.get(CHANGELIST)
    client.post(CHANGELIST, {"action": "stop", "_selected_action": [strategy.pk]})

    assert page.status_code == 200
    assert 'value="stop"' not in page.content.decode()
    strategy.refresh_from_db()
    assert strategy.status == "RUNNING"


def test_the_strategy_list_takes_a_fixed_number_of_queries(travel, operator, django_assert_max_num_queries):
    account = BrokerAccountFactory.create()
    now = timezone.now()
    for _ in range(30):
        strategy_create(account=account, buy_fire_at=now + timedelta(hours=1), sell_fire_at=now + timedelta(hours=2))

    with django_assert_max_num_queries(8):
        page = operator.get(CHANGELIST)

    assert page.status_code == 200
    assert len(page.context["cl"].result_list) == 30


@pytest.mark.parametrize(
    ("search", "found"), [("infy", 2), ("tcs", 1), ("owner", 1), ("id", 1), ("nobody@example.com", 0)]
)
def test_search_matches_a_symbol_an_owners_email_or_an_id_exactly(travel, operator, search, found):
    first, second = running_strategy(), running_strategy()
    services.strategy_stop(user=second.owner, strategy_id=second.pk)
    third = running_strategy()
    Strategy.objects.filter(pk=third.pk).update(symbol="TCS")
    term = {"owner": first.owner.email.upper(), "id": str(third.pk)}.get(search, search)

    page = operator.get(CHANGELIST, {"q": term})

    assert len(page.context["cl"].result_list) == found


def test_an_operator_adds_a_holiday_and_the_calendar_closes_that_day(operator):
    from strategies import calendar

    day = date(2027, 1, 26)
    assert calendar.is_trading_day("NSE", day)

    response = operator.post(
        "/admin/strategies/marketholiday/add/", {"venue": "NSE", "date": "2027-01-26", "description": "Republic Day"}
    )

    assert response.status_code == 302
    assert MarketHoliday.objects.filter(venue="NSE", date=day).exists()
    assert not calendar.is_trading_day("NSE", day)


def test_a_holiday_on_a_day_with_planned_strategies_warns_the_operator(travel, operator):
    strategy = running_strategy()

    response = operator.post(
        "/admin/strategies/marketholiday/add/",
        {"venue": "SIM", "date": f"{strategy.trade_date:%Y-%m-%d}", "description": "Simulator maintenance"},
        follow=True,
    )

    said = [str(message) for message in response.context["messages"]]
    assert said[0] == (
        f"1 strategies are planned on SIM for {strategy.trade_date:%Y-%m-%d} and were checked before this "
        "holiday existed: stop the running ones if they must not trade that day."
    )


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("trading_weekdays", "mon,tue", "Weekday numbers 0 (Monday) to 6 (Sunday)"),
        ("trading_weekdays", "0,7", "Weekday numbers 0 (Monday) to 6 (Sunday)"),
        ("time_zone", "India/Mumbai", "An IANA time zone"),
        ("closes_at", "09:00", "Constraint"),
    ],
)
def test_a_session_edit_that_would_break_the_calendar_is_refused_on_the_form(operator, field, value, error):
    from strategies.models import MarketSession

    session = MarketSession.objects.get(venue="NSE")
    form = {
        "venue": "NSE",
        "opens_at": "09:15",
        "closes_at": "15:30",
        "time_zone": "Asia/Kolkata",
        "trading_weekdays": "0,1,2,3,4",
        field: value,
    }

    response = operator.post(f"/admin/strategies/marketsession/{session.pk}/change/", form)

    assert response.status_code == 200
    assert error in response.content.decode()
    session.refresh_from_db()
    assert (session.trading_weekdays, session.time_zone, f"{session.closes_at:%H:%M}") == (
        "0,1,2,3,4",
        "Asia/Kolkata",
        "15:30",
    )


def test_a_session_edit_is_saved_tidied(operator):
    from strategies.models import MarketSession

    session = MarketSession.objects.get(venue="BSE")
    form = {"venue": "BSE", "opens_at": "09:15", "closes_at": "15:00", "time_zone": " Asia/Kolkata "}

    response = operator.post(
        f"/admin/strategies/marketsession/{session.pk}/change/", {**form, "trading_weekdays": "4, 0,1,2,3"}
    )

    assert response.status_code == 302
    session.refresh_from_db()
    assert (session.trading_weekdays, session.time_zone, f"{session.closes_at:%H:%M}") == (
        "0,1,2,3,4",
        "Asia/Kolkata",
        "15:00",
    )


def test_a_failure_after_the_stop_is_a_message_and_the_rest_of_the_selection_still_runs(travel, operator, monkeypatch):
    import redis

    first, second = running_strategy(), running_strategy()
    unschedule = slots.unschedule_strategy

    def redis_down_for_the_first(strategy):  # an outage between the commit and the clean-up
        if strategy.pk == first.pk:
            raise redis.ConnectionError("Connection refused")
        unschedule(strategy)

    monkeypatch.setattr(slots, "unschedule_strategy", redis_down_for_the_first)

    said = act(operator, "stop", first, second)

    assert said == [
        f"#{first.pk} NSE:INFY ({first.owner}): failed (ConnectionError); reload to see its state, and see the logs.",
        f"#{second.pk} NSE:INFY ({second.owner}): stopped by an operator.",
    ]
    assert list(Strategy.objects.order_by("pk").values_list("status", flat=True)) == ["STOPPED", "STOPPED"]
