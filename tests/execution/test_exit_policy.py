"""An exit that fails is never abandoned: settlement places it again (a stop-loss sooner
than a SELL) until the position is flat, alerting the user once; an account that cannot
trade holds the exit back until a new session, then it goes out. The Kite simulator's
order book is the judge, and never shows two live exits."""

from datetime import timedelta

import pytest
from django.utils import timezone

from brokers.models import BrokerAccount
from brokers.services import broker_account_create_session
from execution.models import Order
from execution.recovery.settlement import orders_settle_interrupted
from execution.services import strategy_sell_execute, strategy_stoploss_execute
from monitoring.models import EventLog
from tests.execution.helpers import codes, orders

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def quick_retries(settings):
    settings.EXIT_RETRY_FIRST_DELAY_SECONDS = 0.0
    settings.EXIT_RETRY_MAX_DELAY_SECONDS_STOPLOSS = 0.0
    settings.EXIT_RETRY_MAX_DELAY_SECONDS_SELL = 0.0


def book(kite_sim, sim_account):
    return [(o["transaction_type"], o["quantity"], o["tag"], o["status"]) for o in kite_sim.orders(sim_account.api_key)]


def alerts(strategy, alert):
    """Incidents opened (a resolved incident records a second L4, its resolution)."""
    return EventLog.objects.filter(strategy=strategy, code="L4", payload__alert=alert, payload__state="open").count()


def settle():
    return orders_settle_interrupted(older_than=0)


def test_a_rejected_stoploss_exit_is_placed_again_until_it_fills_with_one_alert(
    make_strategy, kite_account, kite_sim, sim_account
):
    strategy = make_strategy(account=kite_account, position="BOUGHT")
    kite_sim.set_fault("reject", api_key=sim_account.api_key, times=2, message="RMS:Rule: circuit limit")

    first = strategy_stoploss_execute(strategy_id=strategy.pk)

    assert first is not None and first.status == Order.Status.REJECTED
    strategy.refresh_from_db()
    assert (strategy.status, strategy.position, strategy.exit_reason) == ("RUNNING", "EXITING", "STOPLOSS")
    assert alerts(strategy, "exit_failed") == 1

    settle()  # rejected again
    settle()  # filled

    second, third = orders(strategy)[1:]
    assert (second.retry_of_id, third.retry_of_id) == (first.pk, second.pk)
    assert [(o.reason, o.status) for o in orders(strategy)] == [
        ("STOPLOSS", "REJECTED"),
        ("STOPLOSS", "REJECTED"),
        ("STOPLOSS", "COMPLETE"),
    ]
    assert book(kite_sim, sim_account) == [
        ("SELL", 1, first.tag, "REJECTED"),
        ("SELL", 1, second.tag, "REJECTED"),
        ("SELL", 1, third.tag, "COMPLETE"),
    ]
    strategy.refresh_from_db()
    assert (strategy.status, strategy.position) == ("EXITED", "EXITED_BY_SL")
    assert alerts(strategy, "exit_failed") == 1
    assert codes(strategy).count("S5") == 1


def test_a_sell_that_exhausted_its_retries_is_placed_again_by_settlement(
    make_strategy, kite_account, kite_sim, sim_account
):
    strategy = make_strategy(account=kite_account, position="BOUGHT")
    kite_sim.set_fault("rate_limit", endpoint="place_order", api_key=sim_account.api_key, times=None)

    first = strategy_sell_execute(strategy_id=strategy.pk, reason="SELL")

    assert first is not None and first.status == Order.Status.FAILED and first.attempts > 1
    settle()
    assert len(orders(strategy)) == 2 and book(kite_sim, sim_account) == []  # still refused: retried, not placed
    kite_sim.clear_faults()

    settle()

    *_, last = orders(strategy)
    assert book(kite_sim, sim_account) == [("SELL", 1, last.tag, "COMPLETE")]
    strategy.refresh_from_db()
    assert (strategy.status, strategy.position, strategy.exit_reason) == ("EXITED", "SOLD", "SELL")
    assert alerts(strategy, "exit_failed") == 1


def test_a_stoploss_is_placed_again_sooner_than_a_sell(make_strategy, kite_account, kite_sim, sim_account, settings):
    settings.EXIT_RETRY_FIRST_DELAY_SECONDS = 5.0
    settings.EXIT_RETRY_MAX_DELAY_SECONDS_STOPLOSS = 2.0
    settings.EXIT_RETRY_MAX_DELAY_SECONDS_SELL = 60.0
    stopped = make_strategy(account=kite_account, position="BOUGHT")
    sold = make_strategy(account=kite_account, position="BOUGHT")
    kite_sim.set_fault("reject", api_key=sim_account.api_key, times=2)
    strategy_stoploss_execute(strategy_id=stopped.pk)
    strategy_sell_execute(strategy_id=sold.pk, reason="SELL")
    three_seconds_ago = timezone.now() - timedelta(seconds=3)
    Order.objects.filter(strategy__in=[stopped, sold]).update(updated_at=three_seconds_ago)

    settle()

    assert [o.status for o in orders(stopped)] == ["REJECTED", "COMPLETE"]
    assert [o.status for o in orders(sold)] == ["REJECTED"]  # its first retry waits 5 s
    stopped.refresh_from_db()
    sold.refresh_from_db()
    assert (stopped.position, sold.position) == ("EXITED_BY_SL", "EXITING")


def test_an_exit_refused_for_an_expired_session_waits_for_a_new_login(
    make_strategy, kite_account, kite_sim, sim_account
):
    strategy = make_strategy(account=kite_account, position="BOUGHT")
    kite_sim.set_fault("token_expired", endpoint="place_order", api_key=sim_account.api_key)

    first = strategy_stoploss_execute(strategy_id=strategy.pk)

    assert first is not None and first.status == Order.Status.FAILED
    kite_account.refresh_from_db()
    assert kite_account.status == BrokerAccount.Status.TOKEN_EXPIRED
    for _ in range(3):
        settle()
    assert len(orders(strategy)) == 1 and book(kite_sim, sim_account) == []
    assert alerts(strategy, "exit_blocked") == 1
    strategy.refresh_from_db()
    assert (strategy.status, strategy.position) == ("RUNNING", "EXITING")

    broker_account_create_session(account=kite_account, request_token=kite_sim.issue_request_token(sim_account.api_key))
    settle()

    _, placed = orders(strategy)
    assert placed.retry_of_id == first.pk and placed.status == Order.Status.COMPLETE
    assert book(kite_sim, sim_account) == [("SELL", 1, placed.tag, "COMPLETE")]
    strategy.refresh_from_db()
    assert (strategy.status, strategy.position) == ("EXITED", "EXITED_BY_SL")
    assert alerts(strategy, "exit_blocked") == 1


def test_a_disabled_account_holds_the_exit_until_an_operator_enables_it(
    make_strategy, kite_account, kite_sim, sim_account
):
    strategy = make_strategy(account=kite_account, position="BOUGHT")
    kite_sim.set_fault("reject", api_key=sim_account.api_key)
    strategy_sell_execute(strategy_id=strategy.pk, reason="SELL")
    BrokerAccount.objects.filter(pk=kite_account.pk).update(status=BrokerAccount.Status.DISABLED)

    settle()
    assert len(orders(strategy)) == 1 and alerts(strategy, "exit_failed") == 1
    BrokerAccount.objects.filter(pk=kite_account.pk).update(status=BrokerAccount.Status.ACTIVE)
    settle()

    assert [o.status for o in orders(strategy)] == ["REJECTED", "COMPLETE"]
    strategy.refresh_from_db()
    assert strategy.position == "SOLD"


def test_the_lost_exit_of_a_stop_is_placed_by_settlement(make_strategy, kite_account, kite_sim, sim_account):
    # STOP claimed the exit (EXITING(STOP)) and its execute_sell_task never ran.
    strategy = make_strategy(account=kite_account, position="EXITING", exit_reason="STOP", status="STOPPED")

    settle()

    [placed] = orders(strategy)
    assert (placed.reason, placed.status) == ("STOP", "COMPLETE")
    assert book(kite_sim, sim_account) == [("SELL", 1, placed.tag, "COMPLETE")]
    strategy.refresh_from_db()
    assert (strategy.status, strategy.position) == ("EXITED", "SOLD")
