"""Racing deliveries through the services on real PostgreSQL and Redis, one thread (and
database connection) each: a SELL and a stop-loss at the same instant give one exit
order, 50 copies of one BUY give one order; with and without the Redis lock, since the
database alone must hold the line."""

import threading
from functools import partial

import pytest

from execution.models import Order
from execution.recovery.settlement import orders_settle_interrupted
from execution.services import locks, strategy_buy_execute, strategy_sell_execute, strategy_stoploss_execute
from execution.services.orders import order_create
from tests import soak as races
from tests.execution.helpers import orders, paper_book, together
from tests.factories import BrokerAccountFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.soak]


@pytest.fixture(params=["with_lock", "database_only"])
def lock_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "database_only":
        # Every delivery "gets" the lock: only the claim and the constraints stand in the way.
        monkeypatch.setattr(
            locks,
            "lock_acquire",
            lambda *, strategy_id, **_: locks.ExecutionLock(
                strategy_id=strategy_id, token=f"free-{threading.get_ident()}"
            ),
        )
    return str(request.param)


def test_sell_and_stoploss_at_the_same_instant_never_give_two_exit_orders(make_strategy, lock_mode):
    account = BrokerAccountFactory.create()
    rounds = races.rounds(full=200, suite=40) if lock_mode == "with_lock" else races.rounds(full=100, suite=30)
    outcomes: dict[str, int] = {}
    for _ in range(rounds):
        strategy = make_strategy(account=account, position="BOUGHT")

        together(
            [
                partial(strategy_sell_execute, strategy_id=strategy.pk, reason="SELL"),
                partial(strategy_stoploss_execute, strategy_id=strategy.pk),
            ]
        )

        exits = [o for o in orders(strategy) if o.side == Order.Side.SELL]
        assert len(exits) == 1, exits
        assert exits[0].status == Order.Status.COMPLETE
        strategy.refresh_from_db()
        assert strategy.status == "EXITED" and strategy.exit_reason == exits[0].reason
        outcomes[exits[0].reason] = outcomes.get(exits[0].reason, 0) + 1
    assert len([o for o in paper_book(strategy) if o.side == "SELL"]) == rounds  # one a round, the account's book
    print(f"{lock_mode}: exits won {outcomes}")  # noqa: T201


def test_fifty_identical_buy_deliveries_at_once_place_one_order(make_strategy, lock_mode):
    strategy = make_strategy()

    together([lambda: strategy_buy_execute(strategy_id=strategy.pk)] * 50)

    assert len(paper_book(strategy)) == 1
    [order] = orders(strategy)
    assert order.status == Order.Status.COMPLETE
    strategy.refresh_from_db()
    assert strategy.position == "BOUGHT"


def test_a_failed_exit_placed_again_by_racing_settlements_and_triggers_gives_one_new_exit(
    make_strategy, lock_mode, settings
):
    settings.EXIT_RETRY_FIRST_DELAY_SECONDS = 0.0
    settings.EXIT_RETRY_MAX_DELAY_SECONDS_STOPLOSS = 0.0
    settings.EXIT_RETRY_MAX_DELAY_SECONDS_SELL = 0.0
    account = BrokerAccountFactory.create()
    for _ in range(20):
        # Given a stop-loss exit the broker rejected (the position still open, EXITING)
        strategy = make_strategy(account=account, position="EXITING", exit_reason="STOPLOSS")
        rejected = order_create(strategy=strategy, reason=Order.Reason.STOPLOSS)
        Order.objects.filter(pk=rejected.pk).update(status=Order.Status.REJECTED)

        # when settlement rounds, a repeated trigger and the SELL timer all place it again at once
        together(
            [
                partial(orders_settle_interrupted, older_than=0),
                partial(orders_settle_interrupted, older_than=0),
                partial(strategy_stoploss_execute, strategy_id=strategy.pk),
                partial(strategy_sell_execute, strategy_id=strategy.pk, reason="SELL"),
            ]
        )

        # then exactly one more exit reached the broker, and it closed the position
        _, *again = orders(strategy)
        assert [(o.reason, o.status) for o in again] == [("STOPLOSS", "COMPLETE")], again
        assert again[0].retry_of_id == rejected.pk
        strategy.refresh_from_db()
        assert (strategy.status, strategy.position) == ("EXITED", "EXITED_BY_SL")
    assert len([o for o in paper_book(strategy) if o.side == "SELL"]) == 20
