"""BUY and SELL fire at their second through a real ``celery beat`` (DatabaseScheduler)
and a real orders worker, started here as subprocesses on the test database."""

import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import PeriodicTask, PeriodicTasks

from algotrader.celery import app
from algotrader.processes import ProcessGroup, celery
from algotrader.queues import CeleryQueue
from algotrader.redis_client import get_redis
from execution.tasks import execute_buy_task
from monitoring.models import EventLog
from strategies import slots
from strategies.models import Strategy
from strategies.tasks import fire_slot_task
from tests.strategies.factories_scheduling import strategy_create
from tests.strategies.scheduling_helpers import declare_queues

# Beat looks for changes every CELERY_BEAT_MAX_LOOP_INTERVAL (0.5 s) and then sleeps to the
# instant; a fire within this of its second is on time on a loaded 2-core test machine.
ON_TIME = 0.5

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[ProcessGroup]:
    parts = urlsplit(os.environ["DATABASE_URL"])
    database_url = urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1"}
    worker_name = f"schedtest-{uuid.uuid4().hex[:8]}@%h"
    commands = {
        "worker": ["worker", "-Q", "orders,scheduler", "-n", worker_name, "--concurrency", "2", "--without-mingle"],
        "beat": ["beat", "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler"],
    }
    stack = ProcessGroup(tmp_path_factory.mktemp("celery"), env)
    for name, command in commands.items():
        stack.start(name, celery(*command, "--loglevel", "INFO"))
    try:
        deadline = time.monotonic() + 60
        declare_queues()
        while not app.control.ping(destination=[worker_name.replace("%h", os.uname().nodename)], timeout=0.5):
            assert time.monotonic() < deadline, stack.logs()
        while "DatabaseScheduler: Schedule changed" not in stack.log("beat") and "beat: Starting" not in stack.log(
            "beat"
        ):
            assert time.monotonic() < deadline, stack.logs()
            time.sleep(0.1)
        time.sleep(1)  # beat's first look at the table
        yield stack
    finally:
        stack.stop_all()
        # PostgreSQL ends a closed client's session a moment later; the test database can
        # be dropped at the end of the run only once they are gone.
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            for _ in range(100):
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                if cursor.fetchone()[0] == 0:
                    break
                time.sleep(0.05)


@pytest.fixture(autouse=True)
def flushed_stack_ready(stack: ProcessGroup) -> Iterator[None]:
    """Every test starts on a flushed Redis and a flushed database. Beat remembers the last
    change stamp it saw, and on a missing stamp row (flushed) it forgets it, missing the next
    change: stamp once and let beat see it. In production the row is never deleted."""
    declare_queues()
    PeriodicTasks.update_changed()
    time.sleep(0.7)
    yield
    # The database is flushed next: let the worker finish what it was given first, or its
    # transactions and the flush's TRUNCATE deadlock.
    deadline = time.monotonic() + 10
    while get_redis().llen(CeleryQueue.ORDERS.value) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)


def next_second(ahead: float) -> datetime:
    """A whole second at least ``ahead`` seconds from now: what a user schedules."""
    moment = timezone.now() + timedelta(seconds=ahead)
    return moment.replace(microsecond=0) + timedelta(seconds=1)


def wait_for(condition: Callable[[], bool], stack: ProcessGroup, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, stack.logs()
        time.sleep(0.05)


def events(strategy: Strategy, code: str) -> list[EventLog]:
    return list(EventLog.objects.filter(strategy=strategy, code=code).order_by("id"))


def skew(event: EventLog, scheduled: datetime) -> float:
    return (event.created_at - scheduled).total_seconds()


def test_buy_then_sell_fire_at_their_seconds(stack):
    buy = next_second(2)
    strategy = strategy_create(buy_fire_at=buy, sell_fire_at=buy + timedelta(seconds=2))

    slots.schedule_strategy(strategy)
    wait_for(lambda: len(events(strategy, "E2")) == 1, stack)

    [t1], [e1], [t2], [e2] = (events(strategy, code) for code in ("T1", "E1", "T2", "E2"))
    print(f"T1 {skew(t1, buy):.3f} s, E1 {skew(e1, buy):.3f} s after the BUY second")  # noqa: T201
    print(f"T2 {skew(t2, strategy.sell_fire_at):.3f} s after the SELL second")  # noqa: T201
    assert 0 <= skew(t1, buy) < ON_TIME, stack.logs()
    assert t1.created_at <= e1.created_at < t2.created_at <= e2.created_at
    assert 0 <= skew(t2, strategy.sell_fire_at) < ON_TIME, stack.logs()
    # Whichever claimed it, its slot or the sweeper passing at that second, it fired once, on time.


def test_t3_moves_a_pending_fire_later_the_old_second_fires_nothing(stack):
    old = next_second(2)
    new = old + timedelta(seconds=2)
    strategy = strategy_create(buy_fire_at=old, sell_fire_at=old + timedelta(seconds=30))
    slots.schedule_strategy(strategy)

    Strategy.objects.filter(pk=strategy.pk).update(buy_fire_at=new)
    strategy.refresh_from_db()
    slots.reschedule_strategy(strategy)
    wait_for(lambda: timezone.now() > old + timedelta(seconds=1), stack)

    assert events(strategy, "T1") == []
    wait_for(lambda: len(events(strategy, "E1")) == 1, stack)
    [t1] = events(strategy, "T1")
    assert 0 <= skew(t1, new) < ON_TIME, stack.logs()
    assert len(events(strategy, "T3")) == 1


def test_t3_moving_a_fire_earlier_is_in_effect_within_a_second(stack):
    strategy = strategy_create(
        buy_fire_at=next_second(30), sell_fire_at=next_second(60), account=None
    )  # far enough that only the move can make it fire
    slots.schedule_strategy(strategy)

    new = timezone.now() + timedelta(seconds=1)
    Strategy.objects.filter(pk=strategy.pk).update(buy_fire_at=new)
    strategy.refresh_from_db()
    slots.reschedule_strategy(strategy)
    wait_for(lambda: len(events(strategy, "T1")) == 1, stack)

    [t1] = events(strategy, "T1")
    wait_for(lambda: len(events(strategy, "E1")) == 1, stack)
    print(f"moved 1 s ahead: fired {skew(t1, new):.3f} s after the new instant")  # noqa: T201
    assert 0 <= skew(t1, new) < ON_TIME, stack.logs()


def test_stop_removes_the_fire_and_nothing_fires_after(stack):
    # Beyond RELEASE_MARGIN even on a loaded machine: a slot inside it is kept to fire (harmlessly).
    buy = next_second(slots.RELEASE_MARGIN.total_seconds() + 2)
    strategy = strategy_create(buy_fire_at=buy, sell_fire_at=buy + timedelta(seconds=1))
    slots.schedule_strategy(strategy)

    Strategy.objects.filter(pk=strategy.pk).update(status=Strategy.Status.STOPPED)
    slots.unschedule_strategy(strategy)
    assert not PeriodicTask.objects.filter(
        name__in=[slots.slot_name(buy), slots.slot_name(buy + timedelta(seconds=1))]
    ).exists()
    wait_for(lambda: timezone.now() > buy + timedelta(seconds=2), stack)

    assert EventLog.objects.filter(strategy=strategy).count() == 0


def test_a_slot_run_twice_by_the_worker_fires_one_buy(stack):
    now = timezone.now()
    strategy = strategy_create(buy_fire_at=now - timedelta(seconds=1), sell_fire_at=now + timedelta(seconds=60))

    fire_slot_task.apply_async((slots.iso_utc(strategy.buy_fire_at),))
    fire_slot_task.apply_async((slots.iso_utc(strategy.buy_fire_at),))
    wait_for(lambda: len(events(strategy, "E1")) >= 1, stack)
    time.sleep(1.5)  # room for a second BUY, were there one

    assert len(events(strategy, "T1")) == 1
    assert len(events(strategy, "E1")) == 1
    assert "fire_slot_task" in stack.log("worker")


def test_a_buy_that_waited_past_its_expiry_is_dropped_and_alerted(stack):
    now = timezone.now()
    strategy = strategy_create(buy_fire_at=now - timedelta(seconds=40), sell_fire_at=now + timedelta(seconds=60))

    execute_buy_task.apply_async((strategy.pk,), expires=now - timedelta(seconds=10))
    wait_for(lambda: len(events(strategy, "L4")) == 1, stack)

    assert events(strategy, "E1") == []
