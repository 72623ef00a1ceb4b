"""The account's order rate shared by all workers (a reserve for stop-losses), the
operator's kill switch, and X5 SAFETY_ABORT after too many broker errors."""

import time

import pytest
from django.core.management import call_command

from algotrader.queues import CeleryQueue
from execution.models import EntryHalt, Order
from execution.services import safety, strategy_buy_execute, strategy_sell_execute
from monitoring.models import EventLog
from tests.execution.helpers import codes, orders, paper_book
from tests.factories import BrokerAccountFactory
from tests.strategies.scheduling_helpers import queued
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db


def test_the_order_rate_keeps_a_reserve_for_stoplosses(settings):
    settings.ORDER_RATE_LIMITS = {"paper": 5, "kite": 10}
    settings.ORDER_RATE_STOPLOSS_RESERVE = 2
    account = BrokerAccountFactory.create()
    wait_until(lambda: time.time() % 1 <= 0.3, interval=0.01)  # all of it within one second

    def take(reason):
        return safety.order_rate_take(account=account, reason=reason, deadline=time.monotonic())

    assert [take(Order.Reason.BUY) for _ in range(4)] == [True, True, True, False]
    assert [take(Order.Reason.STOPLOSS) for _ in range(3)] == [True, True, False]


def test_the_order_rate_waits_for_the_next_second_within_the_deadline(settings):
    settings.ORDER_RATE_LIMITS = {"paper": 3, "kite": 10}
    settings.ORDER_RATE_STOPLOSS_RESERVE = 2
    account = BrokerAccountFactory.create()

    first_second = int(time.time())
    results = [safety.order_rate_take(account=account, reason="SELL", deadline=time.monotonic() + 3) for _ in range(2)]

    assert results == [True, True]
    assert int(time.time()) > first_second  # the second order waited for the next second's budget


def test_the_kill_switch_refuses_new_buys_while_exits_run(make_strategy):
    buyer = make_strategy()
    seller = make_strategy(position="BOUGHT")
    call_command("entries", "halt", "--reason", "exchange incident")

    assert strategy_buy_execute(strategy_id=buyer.pk) is None
    strategy_sell_execute(strategy_id=seller.pk, reason="SELL")

    assert orders(buyer) == [] and paper_book(buyer) == [] and "L4" in codes(buyer)
    seller.refresh_from_db()
    assert (seller.status, seller.position) == ("EXITED", "SOLD")
    call_command("entries", "resume")
    assert not EntryHalt.objects.exists()


def test_too_many_broker_errors_abort_the_account(make_strategy, kite_account, kite_sim, sim_account, settings):
    settings.SAFETY_MAX_BROKER_ERRORS = 3
    buyer = make_strategy(account=kite_account)
    holder = make_strategy(account=kite_account, position="BOUGHT")
    idle = make_strategy(account=kite_account)
    kite_sim.set_fault("rate_limit", endpoint="place_order", api_key=sim_account.api_key, times=None)

    strategy_buy_execute(strategy_id=buyer.pk)

    for strategy in (buyer, holder, idle):
        strategy.refresh_from_db()
    assert EntryHalt.objects.filter(account=kite_account).exists()
    assert (holder.status, holder.position, holder.exit_reason) == ("STOPPED", "EXITING", "ABORT")
    assert (idle.status, idle.position) == ("STOPPED", "NONE")
    assert buyer.status in ("STOPPED", "EXITED") and buyer.position == "NONE"
    assert [(q.task, q.args, q.kwargs) for q in queued(CeleryQueue.ORDERS)] == [
        ("execution.tasks.execute_sell_task", [holder.pk], {"reason": "ABORT"})
    ]
    assert EventLog.objects.filter(code="X5").count() == 1

    kite_sim.clear_faults()
    exit_order = strategy_sell_execute(strategy_id=holder.pk, reason="ABORT")

    holder.refresh_from_db()
    assert exit_order is not None and exit_order.reason == "ABORT" and exit_order.status == "COMPLETE"
    assert (holder.status, holder.position, holder.exit_reason) == ("EXITED", "SOLD", "ABORT")
    assert [o["transaction_type"] for o in kite_sim.orders(sim_account.api_key)] == ["SELL"]
