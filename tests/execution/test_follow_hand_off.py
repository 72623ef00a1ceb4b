"""The stop-loss's hand-off, in process against the Kite simulator: the accepted exit goes
to ``follow_order_task`` with the strategy's lock and id, and ``position_follow`` finishes
it whether the task names the strategy (taking the lock over before it reads the order)
or not (a task sent before it did), and whoever holds the lock meanwhile."""

import threading
import time
from typing import Any

import pytest

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from brokers.adapters.kite import KiteAdapter
from execution.models import Order
from execution.services import exits, follow, position_follow, strategy_stoploss_execute
from execution.services.fills import order_follow
from strategies.models import Strategy
from tests.execution.helpers import codes, orders

pytestmark = pytest.mark.django_db

EXIT_TIMELINE = ["E3", "X2", "L2", "B3", "L2", "E5", "S5", "L1"]


@pytest.fixture
def handed_off(monkeypatch: pytest.MonkeyPatch) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """What the stop-loss sends to the orders queue, kept here instead."""
    sent: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(exits, "task_send", lambda name, *, args, kwargs=None, **_: sent.append((args, kwargs or {})))
    return sent


def stopped_out(make_strategy, kite_account, handed_off):
    strategy = make_strategy(account=kite_account, position="BOUGHT")
    placed = strategy_stoploss_execute(strategy_id=strategy.pk, hand_off=True)
    assert placed is not None and placed.status == Order.Status.PENDING
    [(args, kwargs)] = handed_off
    return strategy, args, kwargs


@pytest.mark.django_db(transaction=True)  # queries counted as a worker makes them, outside a test's transaction
def test_the_hand_off_names_the_strategy_and_the_follow_reads_the_order_once_under_the_lock(
    make_strategy, kite_account, kite_sim, sim_account, handed_off, django_assert_num_queries
):
    strategy, args, kwargs = stopped_out(make_strategy, kite_account, handed_off)
    order_id, token, broker_order_id, request = args
    # Another strategy sells at the same instant, as most do: the slot stays.
    companion = make_strategy(account=kite_account)
    Strategy.objects.filter(pk=companion.pk).update(sell_fire_at=strategy.sell_fire_at)

    assert kwargs.keys() == {"strategy_id", "accepted_at"} and kwargs["strategy_id"] == strategy.pk
    # Was 27: an order read twice, the owner, two alerts, the slot's lock. Then 20, and one more
    # since: the exit's notification for its owner, one INSERT in S5's transaction; and one
    # more, once the exit is final: whether its owner has a day's loss limit to check.
    with django_assert_num_queries(22):
        followed = position_follow(
            order_id=order_id, lock_token=token, broker_order_id=broker_order_id, request=request, **kwargs
        )

    assert followed is not None and followed.status == Order.Status.COMPLETE
    strategy.refresh_from_db()
    assert (strategy.status, strategy.position) == ("EXITED", "EXITED_BY_SL")
    assert codes(strategy) == EXIT_TIMELINE
    assert [o["tag"] for o in kite_sim.orders(sim_account.api_key)] == [followed.tag]
    assert not get_redis().exists(redis_keys.lock_state(strategy.pk))


def test_a_follow_task_without_the_strategy_still_finishes_the_exit(
    make_strategy, kite_account, kite_sim, sim_account, handed_off
):
    strategy, args, _ = stopped_out(make_strategy, kite_account, handed_off)
    order_id, token, broker_order_id, request = args

    followed = position_follow(order_id=order_id, lock_token=token, broker_order_id=broker_order_id, request=request)

    assert followed is not None and followed.status == Order.Status.COMPLETE
    assert codes(strategy) == EXIT_TIMELINE
    assert not get_redis().exists(redis_keys.lock_state(strategy.pk))


def test_a_follow_whose_lock_was_taken_waits_for_the_holder_then_finishes_once(
    make_strategy, kite_account, kite_sim, sim_account, handed_off
):
    strategy, args, kwargs = stopped_out(make_strategy, kite_account, handed_off)
    order_id, token, broker_order_id, request = args
    # The handed-over lock expired and another worker holds it now; it lets go shortly.
    get_redis().set(redis_keys.lock_state(strategy.pk), "another-worker")
    release = threading.Timer(0.3, lambda: get_redis().delete(redis_keys.lock_state(strategy.pk)))
    release.start()

    followed = position_follow(
        order_id=order_id, lock_token=token, broker_order_id=broker_order_id, request=request, **kwargs
    )
    again = position_follow(
        order_id=order_id, lock_token=token, broker_order_id=broker_order_id, request=request, **kwargs
    )

    release.join()
    assert followed is not None and followed.status == Order.Status.COMPLETE
    assert again is not None and again.status == Order.Status.COMPLETE
    assert [o["tag"] for o in kite_sim.orders(sim_account.api_key)] == [followed.tag]
    timeline = codes(strategy)
    assert [code for code in timeline if code != "X3"] == [*EXIT_TIMELINE[:2], "X2", *EXIT_TIMELINE[2:]]
    assert [o.status for o in orders(strategy)] == [Order.Status.COMPLETE]


@pytest.mark.parametrize("age", [0.0, 60.0])
def test_the_first_poll_waits_until_the_order_is_old_enough_to_have_an_answer(
    make_strategy, kite_account, kite_sim, handed_off, monkeypatch, age
):
    _, args, kwargs = stopped_out(make_strategy, kite_account, handed_off)
    order_id, token, broker_order_id, request = args
    accepted_at = time.time() - age
    polled_at: list[float] = []
    get_order = KiteAdapter.get_order

    def timed_get_order(self: KiteAdapter, broker_order_id: str) -> Any:
        polled_at.append(time.time())
        return get_order(self, broker_order_id)

    # The wait is order_follow's: timed from its start, not from the lock taken and the
    # acceptance recorded before it, which a loaded machine can make slow.
    follow_started: list[float] = []

    def timed_order_follow(**kwargs: Any) -> Any:
        follow_started.append(time.time())
        return order_follow(**kwargs)

    monkeypatch.setattr(KiteAdapter, "get_order", timed_get_order)
    monkeypatch.setattr(follow, "order_follow", timed_order_follow)
    followed = position_follow(
        order_id=order_id,
        lock_token=token,
        broker_order_id=broker_order_id,
        request=request,
        strategy_id=kwargs["strategy_id"],
        accepted_at=accepted_at,
    )

    assert followed is not None and followed.status == Order.Status.COMPLETE
    if age:  # long answered: polled at once
        assert polled_at[0] - follow_started[0] < 0.05
    else:  # not before the first poll's interval since the broker took it
        assert polled_at[0] >= accepted_at + 0.05
