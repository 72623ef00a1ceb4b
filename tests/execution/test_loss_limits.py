"""The day's loss limit on the paper broker: realized plus unrealized P&L reaching a user's or an
account's ``max_loss_per_day`` halts new BUYs there until the exchange day ends and exits the
open positions through the one exit path (reason ABORT), with G2 and one L4 alert; an exit's
fill checks its user at once, and the periodic pass checks users holding positions."""

import time
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from algotrader import redis_keys
from algotrader.queues import CeleryQueue, TaskName
from algotrader.redis_client import get_redis
from execution import tasks
from execution.models import EntryHalt, Order
from execution.services import safety, strategy_buy_execute, strategy_sell_execute
from execution.services.losses import loss_limits_check, loss_limits_check_holding
from execution.services.risk import risk_limits_set
from monitoring.models import Alert, EventLog
from strategies.models import Strategy
from tests.factories import BrokerAccountFactory
from tests.strategies.scheduling_helpers import queued

pytestmark = pytest.mark.django_db


def price_is(price: str) -> None:
    """The last price: what the paper broker fills at and what unrealized P&L is valued at."""
    get_redis().hset(redis_keys.price("NSE", "INFY"), mapping={"price": price, "ts": time.time()})


def bought(make_strategy, account, *, quantity: int = 10) -> Strategy:
    strategy: Strategy = make_strategy(account=account, quantity=quantity)
    order = strategy_buy_execute(strategy_id=strategy.pk)
    assert order is not None and order.status == Order.Status.COMPLETE
    strategy.refresh_from_db()
    return strategy


def entry(strategy: Strategy) -> Decimal:
    assert strategy.entry_price is not None  # bought
    return strategy.entry_price


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks):
    """Run what commits send (the exits, the check): the test's transaction never commits."""
    return django_capture_on_commit_callbacks


def sells_queued() -> list[tuple[int, str]]:
    return [(q.args[0], q.kwargs["reason"]) for q in queued(CeleryQueue.ORDERS) if q.task == TaskName.EXECUTE_SELL]


def test_a_loss_below_the_limit_changes_nothing(make_strategy):
    account = BrokerAccountFactory.create()
    price_is("100")
    strategy = bought(make_strategy, account)
    risk_limits_set(user=account.owner, max_loss_per_day=Decimal("100"))
    price_is(str(entry(strategy) - Decimal("9.9")))  # 99 lost on 10 shares

    assert loss_limits_check(user_id=account.owner_id) == []

    strategy.refresh_from_db()
    assert (strategy.status, strategy.position) == ("RUNNING", "BOUGHT")
    assert safety.entries_halted(account=account) is None
    assert not EventLog.objects.filter(code="G2").exists()


def test_an_unrealized_loss_reaching_the_users_limit_halts_and_exits_every_account(make_strategy, on_commit):
    account = BrokerAccountFactory.create()
    other_account = BrokerAccountFactory.create(owner=account.owner)
    price_is("100")
    first, second = bought(make_strategy, account), bought(make_strategy, other_account)
    waiting = make_strategy(account=other_account)  # its BUY not yet fired
    risk_limits_set(user=account.owner, max_loss_per_day=Decimal("100"))
    price_is(str(entry(first) - 5))  # 50 lost on each position: 100 in all

    with on_commit(execute=True):
        exiting = loss_limits_check(user_id=account.owner_id)

    assert sorted(exiting) == sorted([first.pk, second.pk])
    assert sorted(sells_queued()) == sorted([(first.pk, "ABORT"), (second.pk, "ABORT")])
    for strategy in (first, second):
        strategy.refresh_from_db()
        assert (strategy.status, strategy.position, strategy.exit_reason) == ("STOPPED", "EXITING", "ABORT")
    halts = EntryHalt.objects.filter(account__in=[account, other_account])
    assert halts.count() == 2 and all(halt.until is not None and halt.until > timezone.now() for halt in halts)
    assert strategy_buy_execute(strategy_id=waiting.pk) is None  # halted: no new entry
    [r2] = EventLog.objects.filter(code="G2")
    assert r2.user_id == account.owner_id and r2.payload["loss"] == "100.0000" and r2.payload["scope"] == "user"
    assert Alert.objects.get(kind="loss_limit").user_id == account.owner_id

    strategy_sell_execute(strategy_id=first.pk, reason="ABORT")  # the exit sent, as its task runs it
    first.refresh_from_db()
    assert (first.status, first.position, first.exit_reason) == ("EXITED", "SOLD", "ABORT")


def test_checking_again_trips_once_one_halt_one_alert_one_exit_each(make_strategy, on_commit):
    account = BrokerAccountFactory.create()
    price_is("100")
    strategy = bought(make_strategy, account)
    risk_limits_set(user=account.owner, max_loss_per_day=Decimal("10"))
    price_is("90")

    with on_commit(execute=True):
        assert loss_limits_check(user_id=account.owner_id) == [strategy.pk]
        assert loss_limits_check(user_id=account.owner_id) == []
        tasks.check_loss_limits_task(account.owner_id)

    assert sells_queued() == [(strategy.pk, "ABORT")]
    assert EntryHalt.objects.count() == 1 and Alert.objects.filter(kind="loss_limit").count() == 1
    assert EventLog.objects.filter(code="G2").count() == 1


def test_an_accounts_limit_halts_and_exits_that_account_only(make_strategy):
    account = BrokerAccountFactory.create()
    other_account = BrokerAccountFactory.create(owner=account.owner)
    price_is("100")
    losing, elsewhere = bought(make_strategy, account), bought(make_strategy, other_account)
    risk_limits_set(user=account.owner, account=account, max_loss_per_day=Decimal("20"))
    price_is("97")

    assert loss_limits_check(user_id=account.owner_id) == [losing.pk]

    elsewhere.refresh_from_db()
    assert (elsewhere.status, elsewhere.position) == ("RUNNING", "BOUGHT")
    assert safety.entries_halted(account=other_account) is None
    assert safety.entries_halted(account=account) is not None


def test_a_realized_loss_counts_and_an_exits_fill_sends_the_check(make_strategy, on_commit):
    account = BrokerAccountFactory.create()
    price_is("100")
    sold, held = bought(make_strategy, account), bought(make_strategy, account, quantity=1)
    risk_limits_set(user=account.owner, max_loss_per_day=Decimal("40"))
    price_is("96")

    with on_commit(execute=True):
        strategy_sell_execute(strategy_id=sold.pk, reason="SELL")  # about 40 realized on 10 shares

    checks = [q.args for q in queued(CeleryQueue.ORDERS) if q.task == TaskName.CHECK_LOSS_LIMITS]
    assert checks == [[account.owner_id]]
    tasks.check_loss_limits_task(account.owner_id)
    held.refresh_from_db()
    assert (held.status, held.position, held.exit_reason) == ("STOPPED", "EXITING", "ABORT")


def test_an_exits_fill_sends_no_check_for_a_user_without_a_loss_limit(make_strategy, on_commit):
    account = BrokerAccountFactory.create()
    strategy = bought(make_strategy, account)

    with on_commit(execute=True):
        strategy_sell_execute(strategy_id=strategy.pk, reason="SELL")

    assert [q for q in queued(CeleryQueue.ORDERS) if q.task == TaskName.CHECK_LOSS_LIMITS] == []


def test_the_periodic_pass_checks_users_holding_positions(make_strategy, on_commit):
    account = BrokerAccountFactory.create()
    price_is("100")
    strategy = bought(make_strategy, account)
    risk_limits_set(user=account.owner, max_loss_per_day=Decimal("10"))
    price_is("80")

    with on_commit(execute=True):
        tasks.check_loss_limits_holding_task()
        tasks.check_loss_limits_holding_task()

    assert sells_queued() == [(strategy.pk, "ABORT")]
    with on_commit(execute=True):
        assert loss_limits_check_holding() == 1  # still exiting: still watched, nothing more sent
    assert sells_queued() == [(strategy.pk, "ABORT")]


def test_the_loss_halt_lapses_when_the_exchange_day_ends(make_strategy):
    account = BrokerAccountFactory.create()
    price_is("100")
    bought(make_strategy, account)
    risk_limits_set(user=account.owner, max_loss_per_day=Decimal("10"))
    price_is("80")
    loss_limits_check(user_id=account.owner_id)
    halt = EntryHalt.objects.get(account=account)
    assert halt.until is not None

    with time_machine.travel(halt.until + timedelta(seconds=1)):
        assert safety.entries_halted(account=account) is None
        # An operator's halt afterwards replaces the lapsed one and lasts until lifted.
        safety.entries_halt(account=account, reason="operator")
        assert safety.entries_halted(account=account) is not None

    assert EntryHalt.objects.get(account=account).until is None


def test_an_operators_lasting_halt_is_not_shortened_by_a_loss_halt(make_strategy):
    account = BrokerAccountFactory.create()
    price_is("100")
    bought(make_strategy, account)
    safety.entries_halt(account=account, reason="operator")
    risk_limits_set(user=account.owner, max_loss_per_day=Decimal("10"))
    price_is("80")

    loss_limits_check(user_id=account.owner_id)

    halt = EntryHalt.objects.get(account=account)
    assert (halt.reason, halt.until) == ("operator", None)
