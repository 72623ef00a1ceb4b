"""A BUY task killed (SIGKILL, through a real worker) after it started but before it
claimed the position, so before its write-ahead Order row: acks_late with
reject_on_worker_lost redelivers it at once if only the pool process died, but the
redelivery meets the dead process's lock; and if the whole worker died the message waits
for the broker's visibility timeout (an hour). Either way settlement runs the fired BUY
while it is still within its grace, exactly once: the Kite simulator's book has one BUY."""

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from brokers.kite_sim import KiteSimulator
from execution.models import Order
from execution.tasks import execute_buy_task
from monitoring.models import EventLog
from strategies.models import Strategy
from tests.execution.helpers import codes, orders
from tests.execution.workers import running_worker, settling
from tests.strategies.scheduling_helpers import declare_queues
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker_env(kite_sim: KiteSimulator) -> dict[str, str]:
    return {
        "KITE_API_ROOT": kite_sim.api_root,
        "KITE_WS_ROOT": kite_sim.ws_root,
        "BUY_GRACE_SECONDS": "120",  # the dead lock (EXECUTION_LOCK_SECONDS, 10 s at least) expires well within it
        "LOST_TASK_AFTER_SECONDS": "1",
        "EXECUTION_LOCK_SECONDS": "10",
        "ORDER_FOLLOW_SECONDS": "10",
    }


# Where the BUY task is held, and killed: FOR UPDATE also blocks the foreign-key check of
# its first event's insert (E1, before the Redis lock); FOR NO KEY UPDATE blocks only the
# claim's UPDATE (after the lock, before the Order row).
BEFORE_THE_LOCK = "FOR UPDATE"
AFTER_THE_LOCK = "FOR NO KEY UPDATE"


@contextmanager
def strategy_row_locked(strategy: Strategy, mode: str = AFTER_THE_LOCK) -> Iterator[None]:
    """Hold the strategy's row from another connection, so that the BUY task waits at the
    point ``mode`` chooses, between its start and its claim."""
    settings_dict = connection.settings_dict
    with psycopg.connect(
        dbname=settings_dict["NAME"],
        user=settings_dict["USER"],
        password=settings_dict["PASSWORD"] or None,
        host=settings_dict["HOST"],
        port=settings_dict["PORT"] or None,
    ) as holder:
        query = f"SELECT id FROM strategies_strategy WHERE id = %s {mode}"  # noqa: S608 - one of two constants
        holder.execute(query, [strategy.pk])
        try:
            yield
        finally:
            holder.rollback()


def claim_waiting() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        (waiting,) = cursor.fetchone()
    return bool(waiting)


def fired(make_strategy, kite_account, worker):
    """A strategy whose T1 has fired (the scheduler recorded it and sent the task), once
    ``worker``'s start recovery is over: that recovery settles a fired BUY with no order
    itself, and these tests are about the task's own delivery."""
    wait_until(lambda: EventLog.objects.filter(code="X4", payload__worker=worker.name).exists(), message=worker.text)
    strategy = make_strategy(account=kite_account)
    Strategy.objects.filter(pk=strategy.pk).update(buy_fired_at=timezone.now())
    return strategy


def e1_count(strategy: Strategy) -> int:
    return EventLog.objects.filter(strategy=strategy, code="E1").count()


def test_a_buy_whose_pool_process_is_killed_before_its_lock_is_redelivered_and_placed_once(
    make_strategy, kite_account, kite_sim, sim_account, worker_env, tmp_path
):
    with running_worker("orders", tmp_path / "orders.log", worker_env) as worker:
        strategy = fired(make_strategy, kite_account, worker)
        with strategy_row_locked(strategy, BEFORE_THE_LOCK):
            execute_buy_task.delay(strategy.pk)
            wait_until(claim_waiting, message=worker.text)
            [pid] = worker.active_pids()
            os.kill(pid, signal.SIGKILL)
        # Redelivered at once (reject_on_worker_lost), and nothing holds the lock: it places the BUY.
        wait_until(lambda: Strategy.objects.get(pk=strategy.pk).position == "BOUGHT", message=worker.text, timeout=60)
        assert "WorkerLostError" in worker.text(tail=10**6)

    assert_one_buy_at_kite(strategy, kite_sim, sim_account)
    assert "X3" not in codes(strategy)


def test_a_buy_whose_pool_process_is_killed_holding_its_lock_is_run_by_settlement_once(
    make_strategy, kite_account, kite_sim, sim_account, worker_env, tmp_path
):
    with running_worker("orders", tmp_path / "orders.log", worker_env) as worker:
        strategy = fired(make_strategy, kite_account, worker)
        with strategy_row_locked(strategy, AFTER_THE_LOCK):
            execute_buy_task.delay(strategy.pk)
            wait_until(claim_waiting, message=worker.text)
            assert orders(strategy) == []
            [pid] = worker.active_pids()
            os.kill(pid, signal.SIGKILL)
        # Redelivered at once (reject_on_worker_lost); the dead process's lock refuses it (X3).
        wait_until(lambda: e1_count(strategy) >= 2 and "X3" in codes(strategy), message=worker.text)
        assert orders(strategy) == []
        with settling():  # the lock expires, and settlement runs the BUY still within its grace
            wait_until(
                lambda: Strategy.objects.get(pk=strategy.pk).position == "BOUGHT", message=worker.text, timeout=60
            )

    assert_one_buy_at_kite(strategy, kite_sim, sim_account)


def assert_one_buy_at_kite(strategy, kite_sim, sim_account) -> None:
    [buy] = orders(strategy)
    assert buy.status == Order.Status.COMPLETE
    assert [(o["transaction_type"], o["tag"], o["status"]) for o in kite_sim.orders(sim_account.api_key)] == [
        ("BUY", buy.tag, "COMPLETE")
    ]


def test_a_buy_whose_whole_worker_is_killed_before_its_claim_is_run_by_settlement_once(
    make_strategy, kite_account, kite_sim, sim_account, worker_env, tmp_path
):
    with running_worker("orders", tmp_path / "first.log", worker_env) as first:
        strategy = fired(make_strategy, kite_account, first)
        with strategy_row_locked(strategy):
            execute_buy_task.delay(strategy.pk)
            wait_until(claim_waiting, message=first.text)
            first.kill()  # the message stays unacknowledged until the visibility timeout
    assert orders(strategy) == [] and e1_count(strategy) == 1

    declare_queues()
    with running_worker("orders", tmp_path / "second.log", worker_env) as second, settling():
        wait_until(lambda: Strategy.objects.get(pk=strategy.pk).position == "BOUGHT", message=second.text, timeout=60)

    assert_one_buy_at_kite(strategy, kite_sim, sim_account)
