"""BUY then SELL (and BUY then stop-loss) end to end through a real celery worker
subprocess consuming both order queues, on the test database and the paper broker."""

from collections.abc import Iterator

import pytest

from execution.tasks import execute_buy_task, execute_sell_task, execute_stoploss_task
from strategies.models import Strategy
from tests.execution.helpers import codes, orders, paper_book
from tests.execution.workers import Worker, running_worker, wait_idle
from tests.strategies.scheduling_helpers import declare_queues
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def running(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Worker]:
    log = tmp_path_factory.mktemp("celery") / "worker.log"
    with running_worker("orders,stoploss", log, {"PAPER_LATENCY_MS": "100"}, concurrency=2) as worker:
        yield worker


@pytest.fixture(autouse=True)
def queues_declared(running: Worker) -> Iterator[None]:
    declare_queues()  # the tests flush Redis, the queues' bindings included
    yield
    wait_idle([running], ["orders", "stoploss"])  # before the database is flushed


def position(strategy: Strategy) -> tuple[str, str]:
    strategy.refresh_from_db()
    return strategy.status, strategy.position


def test_buy_then_sell_through_a_worker(make_strategy, running):
    strategy = make_strategy()

    execute_buy_task.delay(strategy.pk)
    execute_buy_task.delay(strategy.pk)  # a redelivery: one effect
    wait_until(lambda: position(strategy) == ("RUNNING", "BOUGHT"), message=running.text)
    execute_sell_task.delay(strategy.pk, reason="SELL")
    wait_until(lambda: position(strategy) == ("EXITED", "SOLD"), message=running.text)

    assert [(o.side, o.status) for o in paper_book(strategy)] == [("BUY", "COMPLETE"), ("SELL", "COMPLETE")]
    assert [(o.reason, o.status) for o in orders(strategy)] == [("BUY", "COMPLETE"), ("SELL", "COMPLETE")]
    assert codes(strategy).count("S5") == 1


def test_buy_then_stoploss_on_its_own_queue_through_a_worker(make_strategy, running):
    strategy = make_strategy()

    execute_buy_task.delay(strategy.pk)
    wait_until(lambda: position(strategy) == ("RUNNING", "BOUGHT"), message=running.text)
    execute_stoploss_task.delay(strategy.pk)
    wait_until(lambda: position(strategy) == ("EXITED", "EXITED_BY_SL"), message=running.text)

    assert [(o.reason, o.status) for o in orders(strategy)] == [("BUY", "COMPLETE"), ("STOPLOSS", "COMPLETE")]
    assert "execution.tasks.execute_stoploss_task" in running.text(tail=10**6)
