"""The day's loss limit firing at the instant a stop-loss fires, and two loss checks at once
(the periodic pass and an exit's fill), one thread and database connection each, on real
PostgreSQL and Redis: exactly one exit order per position, whoever wins."""

import time
from decimal import Decimal
from functools import partial

import pytest

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from execution.models import Order
from execution.services import safety, strategy_buy_execute, strategy_sell_execute, strategy_stoploss_execute
from execution.services.losses import loss_limits_check
from execution.services.risk import risk_limits_set
from tests import soak as races
from tests.execution.helpers import orders, together
from tests.factories import BrokerAccountFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.soak]


def _loss_limit_fires(user_id: int) -> None:
    """The check, then the exits it sent, run as their tasks would run them."""
    for strategy_id in loss_limits_check(user_id=user_id):
        strategy_sell_execute(strategy_id=strategy_id, reason="ABORT")


def test_a_loss_limit_and_a_stoploss_at_the_same_instant_give_one_exit_order(make_strategy):
    account = BrokerAccountFactory.create()
    risk_limits_set(user=account.owner, max_loss_per_day=Decimal("1"))
    outcomes: dict[str, int] = {}
    for _ in range(races.rounds(full=100, suite=15)):
        get_redis().hset(redis_keys.price("NSE", "INFY"), mapping={"price": "100", "ts": time.time()})
        strategy = make_strategy(account=account, quantity=10)
        assert strategy_buy_execute(strategy_id=strategy.pk) is not None
        get_redis().hset(redis_keys.price("NSE", "INFY"), mapping={"price": "90", "ts": time.time()})

        together(
            [
                partial(_loss_limit_fires, account.owner_id),
                partial(_loss_limit_fires, account.owner_id),
                partial(strategy_stoploss_execute, strategy_id=strategy.pk),
            ]
        )

        exits = [o for o in orders(strategy) if o.side == Order.Side.SELL]
        assert len(exits) == 1, exits
        assert exits[0].status == Order.Status.COMPLETE
        strategy.refresh_from_db()
        assert strategy.status == "EXITED" and strategy.exit_reason == exits[0].reason
        outcomes[exits[0].reason] = outcomes.get(exits[0].reason, 0) + 1
        # The next round's BUY: the halt is the loss limit's, lifted here to trade again.
        safety.entries_resume(account=account)
    print(f"exits won {outcomes}")  # noqa: T201
