"""The stop-loss reserve under Kite's real limits: on one account 200 BUYs fall due at
one instant and, while they pour out at the BUYs' share of the account's 10 orders a
second, 10 stop-losses fire. The Procfile's orders and stop-loss workers run them against
the Kite simulator with every limit on; its book (and its record of refused requests) is
the judge: no stop-loss meets a 429, the stop-losses are not queued behind the BUY
backlog, and every BUY is at the broker once."""

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from algotrader.celery import app
from brokers.kite_limits import KITE_LIMITS
from brokers.kite_sim import KiteSimulator, SimAccount
from brokers.models import BrokerAccount
from execution.models import Order
from execution.tasks import execute_buy_task, execute_stoploss_task
from strategies.models import Strategy
from tests.execution.conftest import StrategyMaker
from tests.execution.helpers import orders
from tests.execution.workers import Worker, procfile_worker, settling, wait_idle
from tests.factories import BrokerAccountFactory
from tests.strategies.scheduling_helpers import declare_queues
from tests.waiting import wait_until

# 200 BUYs at 7 a second take half a minute at best; a loaded machine takes longer.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.timeout(900)]

BUYS, STOPS = 200, 10
WARM_UP = 8  # two for each of the stop-loss worker's four slots, on an account of their own
BUY_SHARE = KITE_LIMITS.orders_per_second - 3  # ORDER_RATE_STOPLOSS_RESERVE's default
# The stops, at three reserved slots a second at least, are all through within four seconds
# of their firing once running; a loaded machine may take a second more to run them. A BUY
# that reaches the broker after they fired and before the last of them overtook it: at most
# that many seconds of the BUYs' share, of a backlog of 150 or more still waiting.
OVERTAKING_AT_MOST = 5 * BUY_SHARE
WORKER_ENV = {
    "ORDERS_CONCURRENCY": "8",  # each thread holds a PostgreSQL connection on a shared test server
    "BUY_GRACE_SECONDS": "300",
    "ORDER_RETRY_SECONDS_BUY": "60",
    "ORDER_FOLLOW_SECONDS": "30",
    "LOST_TASK_AFTER_SECONDS": "120",  # a BUY waiting its turn in the queue is not lost
    "EXECUTION_LOCK_SECONDS": "30",
}


@pytest.fixture
def workers(kite_sim: KiteSimulator, tmp_path: Path) -> Iterator[tuple[Worker, Worker]]:
    declare_queues()
    env = {**WORKER_ENV, "KITE_API_ROOT": kite_sim.api_root, "KITE_WS_ROOT": kite_sim.ws_root}
    with (
        procfile_worker("stoploss", tmp_path / "stoploss.log", env) as stoploss,
        procfile_worker("worker", tmp_path / "orders.log", env) as follower,
    ):
        yield stoploss, follower
        wait_idle([stoploss, follower], ["stoploss", "orders"], timeout=120)


def logs(workers: tuple[Worker, ...]) -> str:
    return "\n".join(worker.text() for worker in workers)


def warm_up(make_strategy: StrategyMaker, kite_sim: KiteSimulator, workers: tuple[Worker, Worker]) -> None:
    """A prefork child's first task opens its database and broker connections."""
    sim = kite_sim.create_account()
    account = BrokerAccountFactory.create(
        kite=True, api_key=sim.api_key, api_secret=sim.api_secret, access_token=sim.access_token
    )
    for strategy in [make_strategy(account=account, position="BOUGHT") for _ in range(WARM_UP)]:
        execute_stoploss_task.delay(strategy.pk)
    wait_until(lambda: len(kite_sim.placed_at(sim.api_key)) == WARM_UP, message=lambda: logs(workers))


def enqueue_buys(strategies: list[Strategy]) -> None:
    """All at once, as the slot fan-out publishes them."""
    Strategy.objects.filter(pk__in=[s.pk for s in strategies]).update(buy_fired_at=timezone.now())
    with app.producer_or_acquire() as producer, producer.batch(max_size=len(strategies)):
        for strategy in strategies:
            # The task's own expiry is BUY_GRACE_SECONDS as this process read it at import.
            execute_buy_task.apply_async(
                (strategy.pk,), producer=producer, expires=int(WORKER_ENV["BUY_GRACE_SECONDS"])
            )


def at_broker(kite_sim: KiteSimulator, api_key: str, side: str) -> list[dict[str, Any]]:
    return [order for order in kite_sim.orders(api_key) if order["transaction_type"] == side]


def tags_of(strategies: list[Strategy], reason: str) -> list[str]:
    return [str(order.tag) for strategy in strategies for order in orders(strategy) if order.reason == reason]


def test_stoplosses_overtake_a_backlog_of_buys_under_kites_limits_and_never_meet_a_429(
    make_strategy: StrategyMaker,
    kite_account: BrokerAccount,
    kite_sim: KiteSimulator,
    sim_account: SimAccount,
    workers: tuple[Worker, Worker],
) -> None:
    # given one account with 10 held positions and 200 BUYs falling due at one instant
    held = [make_strategy(account=kite_account, position="BOUGHT") for _ in range(STOPS)]
    due = [make_strategy(account=kite_account) for _ in range(BUYS)]
    warm_up(make_strategy, kite_sim, workers)
    with settling():
        enqueue_buys(due)
        wait_until(
            lambda: len(at_broker(kite_sim, sim_account.api_key, "BUY")) >= 2 * BUY_SHARE,
            timeout=60,
            message=lambda: logs(workers),
        )

        # when the 10 stop-losses fire while the BUYs pour out
        fired = time.time()
        for strategy in held:
            execute_stoploss_task.delay(strategy.pk)
        wait_until(
            lambda: len(at_broker(kite_sim, sim_account.api_key, "SELL")) == STOPS,
            timeout=60,
            message=lambda: logs(workers),
        )
        wait_until(
            lambda: Strategy.objects.filter(pk__in=[s.pk for s in due], position="BOUGHT").count() == BUYS,
            timeout=240,
            interval=0.5,
            message=lambda: logs(workers),
        )

    # then no stop-loss met a 429 (nor any order the day's cap)
    stop_tags = set(tags_of(held, Order.Reason.STOPLOSS))
    refused = kite_sim.refusals(sim_account.api_key)
    assert not [r for r in refused if r["endpoint"] == "place_order" and r["tag"] in stop_tags], refused
    # and the stop-losses were not queued behind the BUYs still waiting when they fired
    arrived = kite_sim.placed_at(sim_account.api_key)
    last_stop = max(arrived[tag] for tag in stop_tags)
    buys_arrived = [arrived[tag] for tag in tags_of(due, Order.Reason.BUY) if tag in arrived]
    waiting = [at for at in buys_arrived if at > fired]
    overtaking = [at for at in waiting if at < last_stop]
    assert len(waiting) >= BUYS - 50, "the BUYs drained before the stop-losses fired: no backlog to overtake"
    assert len(overtaking) <= OVERTAKING_AT_MOST, (len(overtaking), len(waiting))
    # and every BUY and every stop-loss is at the broker exactly once, filled
    book = kite_sim.orders(sim_account.api_key)
    assert not [tag for tag, n in Counter(order["tag"] for order in book).items() if n > 1]
    buy_tags = sorted(tags_of(due, Order.Reason.BUY))
    filled_buys = sorted(
        str(o.tag) for s in due for o in orders(s) if o.reason == Order.Reason.BUY and o.status == Order.Status.COMPLETE
    )
    assert filled_buys == sorted(o["tag"] for o in book if o["transaction_type"] == "BUY" and o["status"] == "COMPLETE")
    assert len(filled_buys) == BUYS and len(set(buy_tags)) >= BUYS
    assert sorted(o["tag"] for o in book if o["transaction_type"] == "SELL") == sorted(stop_tags)
    assert all(o["status"] == "COMPLETE" for o in book)
