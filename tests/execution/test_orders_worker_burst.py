"""The orders worker exactly as the Procfile starts it (its pool and concurrency) at a
market-open burst of real BUY tasks on the paper broker: every BUY placed once, several
at a time while each waits on the broker; the formation's two such workers sharing the
queue place each once too; and a worker killed with BUYs in flight leaves each of them
placed exactly once by the next worker and settlement."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.utils import timezone

from algotrader.celery import app
from execution.models import Order
from execution.tasks import execute_buy_task
from strategies.models import Strategy
from tests.execution.conftest import StrategyMaker
from tests.execution.helpers import orders, paper_book
from tests.execution.workers import Worker, procfile_worker, settling
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BURST = 40
WORKER_ENV = {
    # Production's pool with fewer threads: each holds a PostgreSQL connection, and the
    # test server's are shared with parallel test runs.
    "ORDERS_CONCURRENCY": "8",
    "PAPER_LATENCY_MS": "300",  # each BUY waits on its fill, as on a broker's round trips
    "BUY_GRACE_SECONDS": "120",
    "LOST_TASK_AFTER_SECONDS": "1",
    "EXECUTION_LOCK_SECONDS": "10",
    "ORDER_SETTLE_AFTER_SECONDS": "1",
}


@pytest.fixture
def burst(make_strategy: StrategyMaker) -> list[Strategy]:
    """BURST strategies, one paper account each, whose T1 has just fired."""
    strategies = [make_strategy() for _ in range(BURST)]
    Strategy.objects.filter(pk__in=[s.pk for s in strategies]).update(buy_fired_at=timezone.now())
    return strategies


def enqueue_buys(strategies: list[Strategy]) -> None:
    """All at once, as the slot fan-out publishes them."""
    with app.producer_or_acquire() as producer, producer.batch(max_size=len(strategies)):
        for strategy in strategies:
            execute_buy_task.apply_async((strategy.pk,), producer=producer)


def bought(strategies: list[Strategy]) -> bool:
    ids = [s.pk for s in strategies]
    return Strategy.objects.filter(pk__in=ids, position=Strategy.Position.BOUGHT).count() == len(ids)


def most_in_flight_at_once(buys: list[Order]) -> int:
    """The most BUY orders open at the broker at one moment (created, not yet filled)."""
    edges = sorted([(o.created_at, 1) for o in buys] + [(o.filled_at or timezone.now(), -1) for o in buys])
    open_now = most = 0
    for _, step in edges:
        open_now += step
        most = max(most, open_now)
    return most


def assert_one_buy_each(strategies: list[Strategy], *, intents: int | None = 1) -> None:
    """One BUY filled per strategy, and one in the paper broker's book. ``intents=None``
    lets an intent the dead worker never sent stand FAILED beside its replacement."""
    for strategy in strategies:
        placed = orders(strategy)
        [buy] = [o for o in placed if o.status == Order.Status.COMPLETE]
        assert buy.side == Order.Side.BUY
        assert [(p.side, p.tag) for p in paper_book(strategy)] == [("BUY", buy.tag)]
        if intents is not None:
            assert len(placed) == intents


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Worker]:
    with procfile_worker("worker", tmp_path / "orders.log", WORKER_ENV) as started:
        yield started


def test_the_procfile_orders_worker_places_a_burst_of_buys_once_each_several_at_a_time(burst, worker):
    enqueue_buys(burst)

    wait_until(lambda: bought(burst), message=worker.text, timeout=120)

    assert_one_buy_each(burst)
    # More BUYs waited on the broker together than the two processes of a prefork pool of
    # two (the Procfile's until the burst showed it) could ever run.
    assert most_in_flight_at_once([orders(s)[0] for s in burst]) > 2


def test_the_procfile_orders_worker_killed_with_buys_in_flight_leaves_each_placed_once(burst, tmp_path):
    with procfile_worker("worker", tmp_path / "first.log", WORKER_ENV) as first:
        enqueue_buys(burst)
        wait_until(
            lambda: Order.objects.filter(status=Order.Status.PLACED).count() >= 3, message=first.text, timeout=60
        )
        first.kill()  # its unacknowledged messages wait for the visibility timeout (an hour)
    assert not bought(burst)

    with procfile_worker("worker", tmp_path / "second.log", WORKER_ENV) as second, settling():
        wait_until(lambda: bought(burst), message=second.text, timeout=120)

    assert_one_buy_each(burst, intents=None)


def test_the_formation_s_two_orders_workers_share_a_burst_and_place_each_buy_once(burst, tmp_path):
    with (
        procfile_worker("worker", tmp_path / "first.log", WORKER_ENV) as first,
        procfile_worker("worker", tmp_path / "second.log", WORKER_ENV) as second,
    ):
        enqueue_buys(burst)
        wait_until(lambda: bought(burst), message=lambda: first.text() + second.text(), timeout=120)
        stats = app.control.inspect(destination=[first.name, second.name], timeout=5).stats() or {}

    assert_one_buy_each(burst)
    started = {name: stats[name]["total"].get("execution.tasks.execute_buy_task", 0) for name in stats}
    assert sorted(started) == sorted([first.name, second.name]), stats
    assert sum(started.values()) >= BURST and all(started.values()), started  # both fetched from the one queue
