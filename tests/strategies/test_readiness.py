"""The morning readiness check over the Kite simulator (real HTTP), with the clock moved to the
morning rather than waited out: a missed login, short funds, a suspended instrument, a circuit,
a holiday; the check once per run however often its pass runs; a run still not ready at its
BUY time skipped with nothing placed, and one made ready in time going ahead."""

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.test import Client
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from brokers.kite_sim import KiteSimulator, SimAccount
from brokers.models import BrokerAccount
from brokers.services import broker_account_create_session, kite_session_expiry
from execution.models import Order
from execution.services import strategy_buy_execute
from monitoring.models import Alert, EventLog
from notifications.models import Notification
from strategies import readiness
from strategies.models import RunReadiness, Strategy
from strategies.tasks import readiness_check_task
from tests.factories import BrokerAccountFactory, UserFactory

pytestmark = pytest.mark.django_db

IST = ZoneInfo("Asia/Kolkata")
WEDNESDAY = date(2026, 12, 9)
CHRISTMAS = date(2026, 12, 25)  # a Friday, an NSE holiday in the seeded calendar
Reason = RunReadiness.Reason


def at(day: date, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=IST)


@pytest.fixture(autouse=True)
def quick_execution(settings: Any) -> None:
    settings.PAPER_LATENCY_MS = 0
    settings.ORDER_FOLLOW_SECONDS = 5.0
    settings.PROTECTIVE_STOPS = False
    settings.READINESS_MINUTES = 15
    settings.READINESS_MARGIN_PERCENT = 100


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    """The morning of a trading day, 09:00 IST, running on from there."""
    with time_machine.travel(at(WEDNESDAY, 9, 0), tick=True) as traveller:
        yield traveller


@pytest.fixture
def kite_account(settings: Any, kite_sim: KiteSimulator, sim_account: SimAccount, clock: Any) -> BrokerAccount:
    """A Kite account on the simulator, logged in this morning (its session ends at 06:00 tomorrow)."""
    settings.KITE_API_ROOT = kite_sim.api_root
    settings.KITE_WS_ROOT = kite_sim.ws_root
    account: BrokerAccount = BrokerAccountFactory.create(
        kite=True,
        api_key=sim_account.api_key,
        api_secret=sim_account.api_secret,
        access_token=sim_account.access_token,
        token_expires_at=kite_session_expiry(at(WEDNESDAY, 8, 0)),
    )
    return account


def run_on(
    account: BrokerAccount, *, day: date = WEDNESDAY, buy: time = time(9, 15), quantity: int = 1, symbol: str = "INFY"
) -> Strategy:
    """A RUNNING one-day strategy on NSE, buying at ``buy`` on ``day``."""
    buy_fire_at = datetime.combine(day, buy, IST)
    return Strategy.objects.create(
        owner=account.owner,
        broker_account=account,
        venue="NSE",
        exchange="NSE",
        symbol=symbol,
        quantity=quantity,
        trade_date=day,
        buy_at=buy,
        sell_at=time(15, 0),
        stop_loss_percent=Decimal("1.00"),
        status=Strategy.Status.RUNNING,
        buy_fire_at=buy_fire_at,
        sell_fire_at=datetime.combine(day, time(15, 0), IST),
    )


def outcome(strategy: Strategy) -> RunReadiness:
    return RunReadiness.objects.get(strategy=strategy, day=strategy.trade_date)


def codes(strategy: Strategy) -> list[str]:
    return list(EventLog.objects.filter(strategy=strategy).order_by("id").values_list("code", flat=True))


def buy_at_its_time(strategy: Strategy, clock: time_machine.Traveller) -> Order | None:
    """As the BUY task runs it at the strategy's BUY time (the fan-out's claim included)."""
    clock.move_to(strategy.buy_fire_at + timedelta(seconds=1))
    Strategy.objects.filter(pk=strategy.pk).update(buy_fired_at=strategy.buy_fire_at)
    return strategy_buy_execute(strategy_id=strategy.pk)


def open_alert(strategy: Strategy) -> Alert | None:
    key = readiness.alert_key(strategy.pk, strategy.trade_date)
    return Alert.objects.filter(kind=readiness.ALERT_KIND, key=key, resolved_at__isnull=True).first()


# --- The check ------------------------------------------------------------------------


def test_a_ready_run_is_checked_once_however_often_the_pass_runs(kite_account):
    strategy = run_on(kite_account)

    assert readiness_check_task() == 1
    assert readiness_check_task() == 0  # a redelivered or next pass: nothing twice

    row = outcome(strategy)
    assert (row.status, row.reason, row.checks) == (RunReadiness.Status.READY, "", 1)
    assert Decimal(row.details["available"]) == Decimal("1000000")
    assert codes(strategy) == ["R1"]
    assert open_alert(strategy) is None


def test_a_run_further_than_the_window_is_not_checked_yet(kite_account, clock):
    strategy = run_on(kite_account, buy=time(9, 30))

    assert readiness_check_task() == 0
    clock.move_to(at(WEDNESDAY, 9, 15, 1))
    assert readiness_check_task() == 1
    assert outcome(strategy).status == RunReadiness.Status.READY


def test_the_accounts_runs_of_the_day_are_checked_together_at_its_first_buy(kite_account):
    first = run_on(kite_account)
    later = run_on(kite_account, buy=time(14, 0), symbol="TCS")

    assert readiness_check_task() == 2
    assert {outcome(first).status, outcome(later).status} == {RunReadiness.Status.READY}


def test_a_missed_login_is_not_ready_and_tells_the_user_what_to_do(kite_account):
    # Logged in yesterday: the session ended at 06:00 this morning.
    BrokerAccount.objects.filter(pk=kite_account.pk).update(token_expires_at=at(WEDNESDAY, 6, 0))
    strategy = run_on(kite_account)

    readiness_check_task()

    row = outcome(strategy)
    assert (row.status, row.reason) == (RunReadiness.Status.NOT_READY, Reason.LOGIN_REQUIRED)
    assert "Log in to Kite before 09:15" in row.message
    alert = open_alert(strategy)
    assert alert is not None and alert.user_id == strategy.owner_id
    notification = Notification.objects.get(user=strategy.owner)
    assert notification.kind == Notification.Kind.READINESS
    assert "Log in to Kite before 09:15" in notification.body


def test_a_session_the_broker_refuses_is_a_missed_login(kite_account, kite_sim, sim_account):
    kite_sim.expire_token(sim_account.api_key)
    strategy = run_on(kite_account)

    readiness_check_task()

    assert outcome(strategy).reason == Reason.LOGIN_REQUIRED
    kite_account.refresh_from_db()
    assert kite_account.status == BrokerAccount.Status.TOKEN_EXPIRED


def test_short_funds_leave_the_buys_they_cannot_cover_not_ready(kite_account, kite_sim, sim_account):
    price = kite_sim.price("NSE", "INFY")
    kite_sim.set_funds(sim_account.api_key, price * 15)  # ten shares, not twenty
    first = run_on(kite_account, quantity=10)
    second = run_on(kite_account, quantity=10, buy=time(9, 20))

    readiness_check_task()

    assert outcome(first).status == RunReadiness.Status.READY
    short = outcome(second)
    assert (short.status, short.reason) == (RunReadiness.Status.NOT_READY, Reason.FUNDS_SHORT)
    assert Decimal(short.details["available"]) == price * 15
    assert Decimal(short.details["needed"]) > Decimal(short.details["available"])
    assert "Add funds" in short.message and "before 09:20" in short.message


def test_a_suspended_instrument_is_not_ready(kite_account, kite_sim):
    kite_sim.suspend("NSE", "TCS")
    try:
        suspended = run_on(kite_account, symbol="TCS")
        tradable = run_on(kite_account, symbol="INFY")

        readiness_check_task()
    finally:
        kite_sim.suspend("NSE", "TCS", suspended=False)

    assert outcome(suspended).reason == Reason.INSTRUMENT_SUSPENDED
    assert outcome(tradable).status == RunReadiness.Status.READY


def test_an_instrument_at_its_upper_circuit_is_not_ready(kite_account, kite_sim):
    instrument = kite_sim.market.instrument("NSE", "WIPRO")
    before = kite_sim.price("NSE", "WIPRO")
    kite_sim.set_price("NSE", "WIPRO", kite_sim.market.circuit(instrument)[1])
    try:
        strategy = run_on(kite_account, symbol="WIPRO")
        readiness_check_task()
    finally:
        kite_sim.set_price("NSE", "WIPRO", before)

    row = outcome(strategy)
    assert row.reason == Reason.AT_CIRCUIT
    assert "upper circuit" in row.message


def test_a_holiday_is_not_ready_without_asking_the_broker(settings, clock):
    account = BrokerAccountFactory.create(kite=True)  # its keys would fail at any broker
    settings.KITE_API_ROOT = "http://127.0.0.1:9"  # nothing listens: a broker call would fail
    clock.move_to(at(CHRISTMAS, 9, 0))
    strategy = run_on(account, day=CHRISTMAS)

    readiness_check_task()

    row = outcome(strategy)
    assert row.reason == Reason.VENUE_CLOSED
    assert "does not trade on Fri 25 Dec 2026" in row.message


def test_an_unreachable_broker_is_no_finding_and_the_buy_goes_ahead(settings, clock):
    account = BrokerAccountFactory.create(kite=True, token_expires_at=kite_session_expiry(at(WEDNESDAY, 8, 0)))
    settings.KITE_API_ROOT = "http://127.0.0.1:9"
    strategy = run_on(account)

    readiness_check_task()

    assert outcome(strategy).reason == Reason.BROKER_UNAVAILABLE
    clock.move_to(strategy.buy_fire_at + timedelta(seconds=1))
    assert readiness.run_buy_gate(strategy=strategy) is None


def test_a_pass_past_its_time_leaves_the_rest_to_the_next(kite_account, monkeypatch):
    strategy = run_on(kite_account)
    monkeypatch.setattr(readiness, "PASS_SECONDS", -1)  # out of time before the first account

    assert readiness_check_task() == 0
    assert not RunReadiness.objects.filter(strategy=strategy).exists()

    monkeypatch.setattr(readiness, "PASS_SECONDS", 50)
    assert readiness_check_task() == 1


def test_a_check_a_killed_worker_left_unfinished_is_taken_over_once_stale(kite_account, clock):
    strategy = run_on(kite_account)
    RunReadiness.objects.create(
        strategy=strategy, broker_account=kite_account, day=WEDNESDAY, claimed_at=at(WEDNESDAY, 8, 50)
    )

    assert readiness_check_task() == 1
    assert readiness_check_task() == 0

    row = outcome(strategy)
    assert (row.status, row.checks) == (RunReadiness.Status.READY, 1)


def test_one_accounts_broken_check_leaves_the_others_theirs(kite_account, monkeypatch):
    other = BrokerAccountFactory.create()  # paper
    broken = run_on(kite_account)
    fine = run_on(other)
    checked = readiness.readiness_check_runs

    def check(*, strategy_ids, now=None):
        if broken.pk in strategy_ids:
            raise RuntimeError("a bug in one account's check")
        return checked(strategy_ids=strategy_ids, now=now)

    monkeypatch.setattr(readiness, "readiness_check_runs", check)
    assert readiness_check_task() == 1

    assert outcome(fine).status == RunReadiness.Status.READY
    assert outcome(broken).status == RunReadiness.Status.PENDING  # taken again once stale


def test_operators_see_the_outcomes_and_check_a_run_again_after_the_users_login(kite_account):
    BrokerAccount.objects.filter(pk=kite_account.pk).update(token_expires_at=at(WEDNESDAY, 6, 0))
    strategy = run_on(kite_account)
    readiness_check_task()
    operator = Client()
    operator.force_login(UserFactory.create(is_staff=True, is_superuser=True))

    page = operator.get("/admin/strategies/runreadiness/?status=NOT_READY")
    assert page.status_code == 200 and b"Log in to Kite before 09:15" in page.content

    BrokerAccount.objects.filter(pk=kite_account.pk).update(token_expires_at=at(WEDNESDAY + timedelta(days=1), 6, 0))
    row = outcome(strategy)
    answer = operator.post(
        "/admin/strategies/runreadiness/", {"action": "check_again", "_selected_action": [row.pk]}, follow=True
    )

    assert [str(m) for m in answer.context["messages"]] == ["Checked again: 1 ready, 0 not ready."]
    assert outcome(strategy).status == RunReadiness.Status.READY
    assert open_alert(strategy) is None


def test_the_owner_reads_the_outcome_and_what_to_do_over_the_api(kite_account):
    BrokerAccount.objects.filter(pk=kite_account.pk).update(token_expires_at=at(WEDNESDAY, 6, 0))
    strategy = run_on(kite_account)
    readiness_check_task()
    owner, stranger = APIClient(), APIClient()
    owner.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(strategy.owner).access_token}")
    stranger.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(UserFactory.create()).access_token}")

    answer = owner.get(f"/api/v1/strategies/{strategy.pk}/readiness/")

    assert answer.status_code == 200
    [run] = answer.json()["results"]
    assert (run["day"], run["status"], run["reason"]) == ("2026-12-09", "NOT_READY", "LOGIN_REQUIRED")
    assert "Log in to Kite before 09:15" in run["message"]
    assert stranger.get(f"/api/v1/strategies/{strategy.pk}/readiness/").status_code == 404


# --- At the BUY time ------------------------------------------------------------------


def test_a_run_still_not_ready_at_its_buy_time_is_skipped_with_nothing_placed(
    kite_account, kite_sim, sim_account, clock
):
    BrokerAccount.objects.filter(pk=kite_account.pk).update(token_expires_at=at(WEDNESDAY, 6, 0))
    strategy = run_on(kite_account)
    readiness_check_task()

    assert buy_at_its_time(strategy, clock) is None

    strategy.refresh_from_db()
    assert (strategy.status, strategy.position) == (Strategy.Status.EXITED, Strategy.Position.NONE)
    assert not Order.objects.filter(strategy=strategy).exists()
    assert kite_sim.orders(sim_account.api_key) == []
    skipped = EventLog.objects.get(strategy=strategy, code="R2")
    assert skipped.payload["reason"] == Reason.LOGIN_REQUIRED
    assert outcome(strategy).checks == 2  # checked again at the BUY time
    assert open_alert(strategy) is None  # the incident ended with the skip
    assert codes(strategy)[-1] == "S5"


def test_a_run_made_ready_in_time_goes_ahead(kite_account, kite_sim, sim_account, clock):
    kite_sim.expire_token(sim_account.api_key)
    strategy = run_on(kite_account)
    readiness_check_task()
    assert outcome(strategy).reason == Reason.LOGIN_REQUIRED

    clock.move_to(at(WEDNESDAY, 9, 10))  # the user logs in through Kite's redirect
    kite_account.refresh_from_db()
    broker_account_create_session(account=kite_account, request_token=kite_sim.issue_request_token(sim_account.api_key))
    order = buy_at_its_time(strategy, clock)

    assert order is not None and order.side == Order.Side.BUY
    assert outcome(strategy).status == RunReadiness.Status.READY
    assert open_alert(strategy) is None
    assert not EventLog.objects.filter(strategy=strategy, code="R2").exists()
    assert [o["tag"] for o in kite_sim.orders(sim_account.api_key)] == [order.tag]


def test_a_ready_run_costs_the_buy_one_read(kite_account, clock, django_assert_num_queries):
    strategy = run_on(kite_account)
    readiness_check_task()
    clock.move_to(strategy.buy_fire_at + timedelta(seconds=1))

    with django_assert_num_queries(1):
        assert readiness.run_buy_gate(strategy=strategy) is None


def test_a_run_never_checked_goes_ahead_at_its_buy_time(kite_account, clock, django_assert_num_queries):
    strategy = run_on(kite_account)  # started after its account's check
    clock.move_to(strategy.buy_fire_at + timedelta(seconds=1))

    with django_assert_num_queries(1):
        assert readiness.run_buy_gate(strategy=strategy) is None
