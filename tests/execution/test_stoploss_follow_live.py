"""The stop-loss worker places the exit and hands the following of its fill, with the
strategy's lock, to the orders worker (``follow_order_task``), as the Procfile runs them,
against the Kite simulator over real HTTP. The simulator's order book is the judge: one
SELL per position, whatever is killed, and the timeline still tells the whole exit."""

from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from brokers.kite_sim import KiteSimulator
from execution.models import Order
from execution.tasks import execute_stoploss_task
from strategies.models import Strategy
from tests.execution.helpers import codes, orders
from tests.execution.workers import Worker, running_worker, settling
from tests.strategies.scheduling_helpers import declare_queues
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WORKER_ENV = {
    "ORDER_FOLLOW_SECONDS": "20",
    "ORDER_UNKNOWN_GRACE_SECONDS": "0.5",
    "ORDER_RETRY_SECONDS_BUY": "2",
    "ORDER_RETRY_SECONDS_SELL": "3",
    "ORDER_RETRY_SECONDS_STOPLOSS": "5",
    "ORDER_RETRY_BACKOFF_MAX_SECONDS": "0.1",
    "ORDER_SETTLE_AFTER_SECONDS": "0",
    "EXECUTION_LOCK_SECONDS": "10",  # the least allowed: a dead follower's lock frees the strategy soonest
}


@pytest.fixture
def env(kite_sim: KiteSimulator) -> dict[str, str]:
    declare_queues()
    return {**WORKER_ENV, "KITE_API_ROOT": kite_sim.api_root, "KITE_WS_ROOT": kite_sim.ws_root}


@pytest.fixture
def stoploss_worker(env: dict[str, str], tmp_path: Path) -> Iterator[Worker]:
    with running_worker("stoploss", tmp_path / "stoploss.log", env) as worker:
        yield worker


def state(strategy: Strategy) -> tuple[str, str]:
    strategy.refresh_from_db()
    return strategy.status, strategy.position


def exited(strategy: Strategy) -> bool:
    return state(strategy) == ("EXITED", "EXITED_BY_SL")


def sells(kite_sim: KiteSimulator, api_key: str) -> list[tuple[str, str]]:
    return [(o["tag"], o["status"]) for o in kite_sim.orders(api_key) if o["transaction_type"] == "SELL"]


def test_the_stoploss_worker_places_the_exit_and_the_orders_worker_finishes_it(
    make_strategy, kite_account, kite_sim, sim_account, stoploss_worker, env, tmp_path
):
    # given a held position, and the fill made slow to report (every status poll waits 1 s)
    strategy = make_strategy(account=kite_account, position="BOUGHT")
    kite_sim.set_fault("delay", endpoint="order_history", seconds=1.0, times=None, api_key=sim_account.api_key)

    # when the stop-loss fires with no orders worker running
    execute_stoploss_task.delay(strategy.pk)

    # then the exit is at the broker and the stop-loss worker is free at once: recording the
    # acceptance and following the fill are the follower's, which has not run yet
    wait_until(lambda: len(sells(kite_sim, sim_account.api_key)) == 1, message=stoploss_worker.text)
    wait_until(lambda: not stoploss_worker.busy(), message=stoploss_worker.text)
    assert state(strategy) == ("RUNNING", "EXITING")
    assert orders(strategy)[0].status == Order.Status.PENDING
    assert codes(strategy) == ["E3", "X2"]
    assert get_redis().exists(redis_keys.lock_state(strategy.pk))  # handed over, not released

    # and once an orders worker runs, it follows the fill and ends the position
    with running_worker("orders", tmp_path / "orders.log", env) as orders_worker:
        wait_until(lambda: state(strategy) == ("EXITED", "EXITED_BY_SL"), message=orders_worker.text)
        wait_until(lambda: "L1" in codes(strategy), message=orders_worker.text)  # recorded just after S5
        # The follower releases the lock on its way out of the task, a moment after L1:
        # the task's end is the fact to wait for before this worker is stopped.
        wait_until(lambda: not orders_worker.busy(), message=orders_worker.text)

    [exit_order] = orders(strategy)
    assert sells(kite_sim, sim_account.api_key) == [(exit_order.tag, "COMPLETE")]
    timeline = codes(strategy)
    assert [code for code in timeline if code in {"E3", "X2", "L2", "B3", "E5", "S5", "L1"}] == [
        "E3",
        "X2",
        "L2",
        "B3",
        "L2",
        "E5",
        "S5",
        "L1",
    ]
    assert not get_redis().exists(redis_keys.lock_state(strategy.pk))  # the follower released it


def test_a_follower_killed_after_the_post_leaves_the_exit_to_settlement_and_it_is_placed_once(
    make_strategy, kite_account, kite_sim, sim_account, stoploss_worker, env, tmp_path
):
    # given an exit whose follower is polling its fill (each poll held 2 s by the broker)
    strategy = make_strategy(account=kite_account, position="BOUGHT")
    kite_sim.set_fault("delay", endpoint="order_history", seconds=2.0, times=None, api_key=sim_account.api_key)
    with running_worker("orders", tmp_path / "orders.log", env) as follower:
        execute_stoploss_task.delay(strategy.pk)
        wait_until(
            lambda: Order.objects.filter(strategy=strategy, status="PLACED").exists(), message=stoploss_worker.text
        )
        wait_until(lambda: follower.active_pids() != [], message=follower.text)

        # when the follower is SIGKILLed mid-follow (nothing acknowledges or requeues its task)
        follower.kill()
    kite_sim.clear_faults()

    # then settlement, once the dead follower's lock expires, settles the exit by its tag
    assert state(strategy) == ("RUNNING", "EXITING")
    with running_worker("orders", tmp_path / "settler.log", env) as settler:
        with settling():
            wait_until(partial(exited, strategy), timeout=40, message=settler.text)
        wait_until(lambda: "L1" in codes(strategy), message=settler.text)  # recorded just after S5

    [exit_order] = orders(strategy)
    assert exit_order.status == Order.Status.COMPLETE
    assert sells(kite_sim, sim_account.api_key) == [(exit_order.tag, "COMPLETE")]
    timeline = codes(strategy)
    assert {"E3", "X2", "B3", "E5", "S5", "L1"} <= set(timeline)
    assert timeline.index("E3") < timeline.index("B3") < timeline.index("E5") < timeline.index("S5")
    assert timeline.count("S5") == 1 and timeline.count("E5") == 1


def test_a_burst_of_stoplosses_each_delivered_twice_gives_one_exit_per_position(
    make_strategy, kite_account, kite_sim, sim_account, env, tmp_path
):
    # given 12 held positions
    strategies = [make_strategy(account=kite_account, position="BOUGHT") for _ in range(12)]

    # when their stops all fire at once, each trigger delivered twice, on two stop-loss processes
    with (
        running_worker("stoploss", tmp_path / "stoploss.log", env, concurrency=2) as stoploss,
        running_worker("orders", tmp_path / "orders.log", env, concurrency=2) as follower,
    ):
        for strategy in strategies:
            execute_stoploss_task.delay(strategy.pk)
            execute_stoploss_task.delay(strategy.pk)
        for strategy in strategies:
            wait_until(partial(exited, strategy), message=lambda: stoploss.text() + follower.text())

    # then each position has exactly one exit, at the broker as in the database
    exits = [order for strategy in strategies for order in orders(strategy)]
    assert [order.reason for order in exits] == [Order.Reason.STOPLOSS] * 12
    assert sorted(sells(kite_sim, sim_account.api_key)) == sorted((str(order.tag), "COMPLETE") for order in exits)
    assert all(codes(strategy).count("S5") == 1 for strategy in strategies)
