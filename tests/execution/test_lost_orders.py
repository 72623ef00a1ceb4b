"""A placement that went unanswered, was not found by its tag within the grace and was
replaced, can still reach the broker's book later (the request was only slow). Settlement
keeps looking its tag up for the rest of the day; when it surfaces it is cancelled if
still open, and what it filled is squared off, so the strategy ends holding exactly what
the Kite simulator's book says it holds."""

import pytest

from brokers.models import BrokerAccount
from execution.models import Order
from execution.recovery.settlement import orders_settle_interrupted
from execution.services import strategy_buy_execute, strategy_sell_execute
from execution.services.orders import watch_end
from monitoring.models import EventLog
from tests.execution.helpers import orders
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db

SLOW = 4.0  # the lost request reaches the simulator's book this long after it was sent


@pytest.fixture(autouse=True)
def slow_broker(settings, kite_account):
    settings.KITE_TIMEOUT_SECONDS = 0.5  # the adapter gives up on the slow request first
    settings.ORDER_RETRY_SECONDS_BUY = 10.0
    settings.ORDER_RETRY_SECONDS_SELL = 10.0


def book(kite_sim, sim_account):
    return [(o["transaction_type"], o["tag"], o["status"]) for o in kite_sim.orders(sim_account.api_key)]


def net(kite_sim, sim_account):
    return sum(row["quantity"] for row in kite_sim.book.positions(sim_account.api_key))


def surfaced_alerts(strategy):
    return EventLog.objects.filter(strategy=strategy, code="L4", payload__alert="order_surfaced").count()


def final_at_broker(kite_sim, sim_account, count):
    """The simulator's book once it holds ``count`` orders, every one final."""
    seen = kite_sim.orders(sim_account.api_key)
    return len(seen) >= count and all(o["status"] in ("COMPLETE", "CANCELLED", "REJECTED") for o in seen)


def test_a_lost_buy_that_surfaces_filled_is_sold_and_the_position_stays_as_planned(
    make_strategy, kite_account, kite_sim, sim_account
):
    strategy = make_strategy(account=kite_account, quantity=3)
    kite_sim.set_fault("delay", endpoint="place_order", seconds=SLOW, api_key=sim_account.api_key)

    placed = strategy_buy_execute(strategy_id=strategy.pk)

    lost, replacement = orders(strategy)
    assert placed is not None and placed.pk == replacement.pk and replacement.retry_of_id == lost.pk
    assert lost.status == Order.Status.FAILED and lost.watch_until == watch_end()
    wait_until(lambda: final_at_broker(kite_sim, sim_account, 2), message=lambda: str(book(kite_sim, sim_account)))
    assert book(kite_sim, sim_account) == [("BUY", replacement.tag, "COMPLETE"), ("BUY", lost.tag, "COMPLETE")]

    orders_settle_interrupted()

    lost.refresh_from_db()
    assert lost.status == Order.Status.FAILED and lost.surfaced_at is not None and lost.watch_until is None
    assert lost.filled_quantity == 3 and lost.broker_order_id
    *_, excess = orders(strategy)
    assert (excess.reason, excess.side, excess.quantity, excess.status) == ("EXCESS", "SELL", 3, "COMPLETE")
    assert net(kite_sim, sim_account) == 3
    strategy.refresh_from_db()
    assert strategy.position == "BOUGHT"
    assert surfaced_alerts(strategy) == 1

    orders_settle_interrupted()  # nothing more to square
    strategy_sell_execute(strategy_id=strategy.pk, reason="SELL")

    assert len(orders(strategy)) == 4 and net(kite_sim, sim_account) == 0
    strategy.refresh_from_db()
    assert (strategy.status, strategy.position) == ("EXITED", "SOLD")
    assert surfaced_alerts(strategy) == 1


def test_a_lost_buy_still_open_when_it_surfaces_is_cancelled(make_strategy, kite_account, kite_sim, sim_account):
    strategy = make_strategy(account=kite_account)
    kite_sim.set_fault("delay", endpoint="place_order", seconds=SLOW, api_key=sim_account.api_key)

    strategy_buy_execute(strategy_id=strategy.pk)
    # The replacement has filled; the slow request, when it lands, stays open.
    kite_sim.set_fault("partial_fill", quantity=0, seconds=600, api_key=sim_account.api_key)
    lost, replacement = orders(strategy)
    wait_until(lambda: [status for _, _, status in book(kite_sim, sim_account)][1:2] == ["OPEN"])  # the lost one

    orders_settle_interrupted()

    assert book(kite_sim, sim_account) == [("BUY", replacement.tag, "COMPLETE"), ("BUY", lost.tag, "CANCELLED")]
    lost.refresh_from_db()
    assert (lost.status, lost.filled_quantity, lost.watch_until) == (Order.Status.FAILED, 0, None)
    assert len(orders(strategy)) == 2 and net(kite_sim, sim_account) == 1
    strategy.refresh_from_db()
    assert strategy.position == "BOUGHT"
    assert surfaced_alerts(strategy) == 1


def test_a_lost_exit_that_surfaces_filled_is_bought_back(make_strategy, kite_account, kite_sim, sim_account):
    strategy = make_strategy(account=kite_account, quantity=2)
    strategy_buy_execute(strategy_id=strategy.pk)
    kite_sim.set_fault("delay", endpoint="place_order", seconds=SLOW, api_key=sim_account.api_key)

    strategy_sell_execute(strategy_id=strategy.pk, reason="SELL")

    _, lost, replacement = orders(strategy)
    assert (lost.status, replacement.status, replacement.retry_of_id) == ("FAILED", "COMPLETE", lost.pk)
    strategy.refresh_from_db()
    assert (strategy.status, strategy.position) == ("EXITED", "SOLD")
    wait_until(lambda: final_at_broker(kite_sim, sim_account, 3), message=lambda: str(book(kite_sim, sim_account)))
    assert net(kite_sim, sim_account) == -2  # sold twice

    orders_settle_interrupted()

    *_, excess = orders(strategy)
    assert (excess.reason, excess.side, excess.quantity, excess.status) == ("EXCESS", "BUY", 2, "COMPLETE")
    assert [side for side, _, _ in book(kite_sim, sim_account)] == ["BUY", "SELL", "SELL", "BUY"]
    assert net(kite_sim, sim_account) == 0
    strategy.refresh_from_db()
    assert (strategy.status, strategy.position) == ("EXITED", "SOLD")
    assert surfaced_alerts(strategy) == 1


def test_a_lost_order_that_never_surfaces_is_looked_up_until_the_day_ends(
    make_strategy, kite_account, kite_sim, sim_account
):
    strategy = make_strategy(account=kite_account)
    kite_sim.set_fault("server_error", endpoint="place_order", api_key=sim_account.api_key)
    strategy_buy_execute(strategy_id=strategy.pk)
    lost, _ = orders(strategy)
    assert lost.watch_until == watch_end()

    orders_settle_interrupted()
    lost.refresh_from_db()
    assert lost.watch_until == watch_end() and lost.surfaced_at is None  # looked up, not there
    Order.objects.filter(pk=lost.pk).update(watch_until=lost.created_at)  # the day has ended

    orders_settle_interrupted()

    assert len(orders(strategy)) == 2 and len(kite_sim.orders(sim_account.api_key)) == 1


def test_a_surfaced_duplicate_is_squared_off_once_the_account_can_trade_again(
    make_strategy, kite_account, kite_sim, sim_account
):
    strategy = make_strategy(account=kite_account)
    kite_sim.set_fault("delay", endpoint="place_order", seconds=SLOW, api_key=sim_account.api_key)
    strategy_buy_execute(strategy_id=strategy.pk)
    wait_until(lambda: final_at_broker(kite_sim, sim_account, 2), message=lambda: str(book(kite_sim, sim_account)))
    BrokerAccount.objects.filter(pk=kite_account.pk).update(status=BrokerAccount.Status.DISABLED)

    orders_settle_interrupted()  # found and recorded; nothing placed while the account cannot trade

    lost, _ = orders(strategy)
    assert lost.surfaced_at is not None and lost.filled_quantity == 1
    assert len(kite_sim.orders(sim_account.api_key)) == 2 and net(kite_sim, sim_account) == 2
    BrokerAccount.objects.filter(pk=kite_account.pk).update(status=BrokerAccount.Status.ACTIVE)

    orders_settle_interrupted()

    *_, excess = orders(strategy)
    assert (excess.reason, excess.side, excess.quantity, excess.status) == ("EXCESS", "SELL", 1, "COMPLETE")
    assert net(kite_sim, sim_account) == 1
