"""A stop-loss holds its slot only briefly: its retries at the broker end with its slot
(STOPLOSS_SLOT_SECONDS, or one attempt on an account already failing), settlement places
it again one attempt a round, and the user is alerted only once the exit has failed for
ORDER_RETRY_SECONDS_STOPLOSS, as when the task itself retried that long."""

import time
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from brokers.kite_sim import KiteSimulator, SimAccount
from brokers.models import BrokerAccount
from execution.models import Order
from execution.recovery.settlement import orders_settle_interrupted
from execution.services import safety, strategy_stoploss_execute
from monitoring.models import EventLog
from strategies.models import Strategy
from tests.execution.conftest import StrategyMaker
from tests.execution.helpers import codes, orders

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def short_slot(settings: Any) -> None:
    settings.STOPLOSS_SLOT_SECONDS = 0.5
    settings.ORDER_RETRY_SECONDS_STOPLOSS = 60.0
    settings.EXIT_RETRY_FIRST_DELAY_SECONDS = 0.0
    settings.EXIT_RETRY_MAX_DELAY_SECONDS_STOPLOSS = 0.0


def alerted(*kinds: str) -> int:
    return EventLog.objects.filter(code="L4", payload__alert__in=kinds, payload__state="open").count()


def storm(kite_sim: KiteSimulator, sim_account: SimAccount) -> None:
    kite_sim.set_fault("rate_limit", endpoint="place_order", api_key=sim_account.api_key, times=None)


def test_a_stoploss_that_outlasts_its_slot_is_left_to_settlement_unalerted(
    make_strategy: StrategyMaker, kite_account: BrokerAccount, kite_sim: KiteSimulator, sim_account: SimAccount
) -> None:
    strategy = make_strategy(account=kite_account, position="BOUGHT")
    storm(kite_sim, sim_account)

    started = time.monotonic()
    order = strategy_stoploss_execute(strategy_id=strategy.pk)

    assert time.monotonic() - started < 2.0
    assert order is not None and order.status == Order.Status.FAILED and order.attempts > 1
    strategy.refresh_from_db()
    assert (strategy.status, strategy.position, strategy.exit_reason) == ("RUNNING", "EXITING", "STOPLOSS")
    assert {"E3", "E4", "B4"} <= set(codes(strategy))
    assert alerted("exit_failed", "broker_unreachable") == 0


def test_settlement_places_a_stormed_stoploss_one_attempt_a_round_until_it_goes_out(
    make_strategy: StrategyMaker, kite_account: BrokerAccount, kite_sim: KiteSimulator, sim_account: SimAccount
) -> None:
    strategy = make_strategy(account=kite_account, position="BOUGHT")
    storm(kite_sim, sim_account)
    strategy_stoploss_execute(strategy_id=strategy.pk)

    orders_settle_interrupted(older_than=0)

    first, again = orders(strategy)
    assert (again.status, again.attempts, again.retry_of_id) == (Order.Status.FAILED, 1, first.pk)
    assert alerted("exit_failed", "broker_unreachable") == 0
    kite_sim.clear_faults()

    orders_settle_interrupted(older_than=0)

    *_, placed = orders(strategy)
    assert placed.status == Order.Status.COMPLETE
    assert [o["tag"] for o in kite_sim.orders(sim_account.api_key)] == [placed.tag]
    strategy.refresh_from_db()
    assert (strategy.status, strategy.position) == ("EXITED", "EXITED_BY_SL")


def test_a_stoploss_on_an_account_already_failing_gives_its_slot_up_after_one_attempt(
    make_strategy: StrategyMaker, kite_account: BrokerAccount, kite_sim: KiteSimulator, sim_account: SimAccount
) -> None:
    strategy = make_strategy(account=kite_account, position="BOUGHT")
    storm(kite_sim, sim_account)
    safety.broker_failing_mark(account=kite_account)  # another order met the storm first

    order = strategy_stoploss_execute(strategy_id=strategy.pk)

    assert order is not None and (order.status, order.attempts) == (Order.Status.FAILED, 1)
    assert "E4" not in codes(strategy)
    strategy.refresh_from_db()
    assert (strategy.position, strategy.exit_reason) == ("EXITING", "STOPLOSS")


def test_a_stoploss_failing_for_its_whole_retry_window_alerts_the_user(
    make_strategy: StrategyMaker, kite_account: BrokerAccount, kite_sim: KiteSimulator, sim_account: SimAccount
) -> None:
    strategy = make_strategy(account=kite_account, position="BOUGHT")
    storm(kite_sim, sim_account)
    strategy_stoploss_execute(strategy_id=strategy.pk)
    assert alerted("exit_failed", "broker_unreachable") == 0
    Order.objects.filter(strategy=strategy).update(created_at=timezone.now() - timedelta(seconds=60))

    orders_settle_interrupted(older_than=0)

    assert alerted("exit_failed") == 1 and alerted("broker_unreachable") == 1
    assert Strategy.objects.get(pk=strategy.pk).position == "EXITING"
