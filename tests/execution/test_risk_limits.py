"""The risk limits before each BUY, on the paper broker: a BUY past a user's or an account's
limit is refused before its intent is written (no order, nothing at the broker), its run ends
with G1 and an L4 alert; within the limits it trades as before."""

from datetime import timedelta
from decimal import Decimal
from functools import partial

import pytest
import time_machine
from django.utils import timezone

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from execution.models import Order
from execution.services import strategy_buy_execute
from execution.services.risk import risk_limits_set
from monitoring.models import Alert
from strategies.models import Strategy
from tests.execution.helpers import codes, orders, paper_book, together
from tests.factories import BrokerAccountFactory

pytestmark = pytest.mark.django_db


def _price(instrument: str, price: str) -> None:
    get_redis().hset(redis_keys.instrument_price(instrument), "price", price)


def _assert_refused(strategy: Strategy, limit: str) -> None:
    strategy.refresh_from_db()
    assert orders(strategy) == []
    # What reached the paper broker on the account is other strategies' orders, every one.
    assert {o.tag for o in paper_book(strategy)} == set(
        Order.objects.filter(account=strategy.broker_account).values_list("tag", flat=True)
    )
    assert (strategy.status, strategy.position, strategy.exit_reason) == ("EXITED", "NONE", "REJECTED")
    assert "G1" in codes(strategy) and "S5" in codes(strategy)
    alert = Alert.objects.get(kind="risk_limit", key=f"strategy:{strategy.pk}")
    assert alert.user_id == strategy.owner_id and alert.payload["limit"] == limit


def test_without_limits_a_buy_fills_as_before(make_strategy):
    strategy = make_strategy()

    order = strategy_buy_execute(strategy_id=strategy.pk)

    assert order is not None and order.status == Order.Status.COMPLETE and order.reference_price is None
    assert "G1" not in codes(strategy)


def test_a_buy_within_a_value_limit_fills_valued_at_the_last_price(make_strategy):
    strategy = make_strategy()
    _price("NSE:INFY", "1550.5")
    risk_limits_set(user=strategy.owner, max_day_value=Decimal("100000"))

    order = strategy_buy_execute(strategy_id=strategy.pk)

    assert order is not None and order.status == Order.Status.COMPLETE
    assert order.reference_price == Decimal("1550.5")


def test_max_open_positions_refuses_a_buy_past_the_users_open_positions(make_strategy):
    held = make_strategy(position="BOUGHT")
    strategy = make_strategy(account=held.broker_account)
    risk_limits_set(user=strategy.owner, max_open_positions=1)

    assert strategy_buy_execute(strategy_id=strategy.pk) is None

    _assert_refused(strategy, "max_open_positions")


def test_a_users_limit_counts_every_account_of_the_user(make_strategy):
    first = make_strategy(position="BOUGHT")
    other_account = BrokerAccountFactory.create(owner=first.owner)
    strategy = make_strategy(account=other_account)
    risk_limits_set(user=strategy.owner, max_open_positions=1)

    strategy_buy_execute(strategy_id=strategy.pk)

    _assert_refused(strategy, "max_open_positions")


def test_an_accounts_stricter_limit_refuses_on_that_account_only(make_strategy):
    account = BrokerAccountFactory.create()
    other_account = BrokerAccountFactory.create(owner=account.owner)
    risk_limits_set(user=account.owner, max_orders_per_day=10)
    risk_limits_set(user=account.owner, account=account, max_orders_per_day=1)
    first, second, elsewhere = (make_strategy(account=a) for a in (account, account, other_account))

    assert strategy_buy_execute(strategy_id=first.pk) is not None
    strategy_buy_execute(strategy_id=second.pk)
    assert strategy_buy_execute(strategy_id=elsewhere.pk) is not None

    _assert_refused(second, "max_orders_per_day")
    assert Alert.objects.get(kind="risk_limit").payload["scope"] == "account"


def test_max_order_value_refuses_quantity_times_the_last_price(make_strategy):
    strategy = make_strategy(quantity=10)
    _price("NSE:INFY", "100")
    risk_limits_set(user=strategy.owner, max_order_value=Decimal("999.99"))

    strategy_buy_execute(strategy_id=strategy.pk)

    _assert_refused(strategy, "max_order_value")


def test_max_order_value_allows_an_order_at_the_limit(make_strategy):
    strategy = make_strategy(quantity=10)
    _price("NSE:INFY", "100")
    risk_limits_set(user=strategy.owner, max_order_value=Decimal("1000"))

    assert strategy_buy_execute(strategy_id=strategy.pk) is not None


def test_without_a_tick_the_order_is_valued_at_the_instruments_reference_price(make_strategy):
    strategy = make_strategy(quantity=2)  # INFY's reference price is 1540.20
    risk_limits_set(user=strategy.owner, max_order_value=Decimal("3000"))

    strategy_buy_execute(strategy_id=strategy.pk)

    _assert_refused(strategy, "max_order_value")


def test_max_day_value_sums_todays_buys_and_not_yesterdays(make_strategy):
    account = BrokerAccountFactory.create()
    _price("NSE:INFY", "100")
    risk_limits_set(user=account.owner, max_day_value=Decimal("2500"))
    with time_machine.travel(timezone.now() - timedelta(days=1)):
        yesterday = make_strategy(account=account, quantity=20)
        assert strategy_buy_execute(strategy_id=yesterday.pk) is not None
    today = make_strategy(account=account, quantity=20)
    bought = strategy_buy_execute(strategy_id=today.pk)
    assert bought is not None and bought.fill_price is not None
    third = make_strategy(account=account, quantity=6)

    strategy_buy_execute(strategy_id=third.pk)

    _assert_refused(third, "max_day_value")
    # Today's fill at its price and this order at the last price; yesterday's BUY not counted.
    assert Decimal(Alert.objects.get(kind="risk_limit").payload["would_be"]) == bought.fill_price * 20 + 600


def test_max_orders_per_day_counts_the_days_buy_orders(make_strategy):
    account = BrokerAccountFactory.create()
    risk_limits_set(user=account.owner, max_orders_per_day=2)
    strategies = [make_strategy(account=account) for _ in range(3)]

    placed = [strategy_buy_execute(strategy_id=s.pk) for s in strategies]

    assert [order is not None for order in placed] == [True, True, False]
    _assert_refused(strategies[2], "max_orders_per_day")


def test_a_limit_set_to_none_is_no_limit(make_strategy):
    strategy = make_strategy(position="BOUGHT")
    second = make_strategy(account=strategy.broker_account)
    risk_limits_set(user=strategy.owner, max_open_positions=1)
    risk_limits_set(user=strategy.owner, max_open_positions=None)

    assert strategy_buy_execute(strategy_id=second.pk) is not None


@pytest.mark.django_db(transaction=True)
def test_racing_buys_of_one_user_never_pass_max_open_positions_together(make_strategy):
    account = BrokerAccountFactory.create()
    other_account = BrokerAccountFactory.create(owner=account.owner)
    risk_limits_set(user=account.owner, max_open_positions=2)
    strategies = [make_strategy(account=a) for a in (account, other_account) * 3]
    together([partial(strategy_buy_execute, strategy_id=s.pk) for s in strategies])

    assert Order.objects.filter(account__owner=account.owner).count() == 2
    assert Strategy.objects.filter(owner=account.owner, position="BOUGHT").count() == 2
    assert Alert.objects.filter(kind="risk_limit").count() == 4
