"""BUY and SELL fire at their second through a real ``celery beat`` (DatabaseScheduler)
and a real orders worker, started here as subprocesses on the test database."""

import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from algotrader.celery import app
from algotrader.processes import ProcessGroup, celery
from algotrader.queues import CeleryQueue
from execution.tasks import execute_buy_task
from monitoring.models import EventLog
from strategies import slots
from strategies.models import Strategy
from strategies.tasks import fire_slot_task
from tests.execution.workers import idle
from tests.strategies.factories_scheduling import strategy_create
from tests.strategies.scheduling_helpers import beat_in_step, declare_queues
from tests.waiting import other_sessions_ended, wait_until

# Beat looks for changes every CELERY_BEAT_MAX_LOOP_INTERVAL (0.5 s) and then sleeps to the
# instant; a fire within this of its second is on time on a loaded 2-core test machine.
ON_TIME = 0.5

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WORKER = f"schedtest-{uuid.uuid4().hex[:8]}@{os.uname().nodename}"
QUEUES = [CeleryQueue.ORDERS.value, CeleryQueue.SCHEDULER.value]


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[ProcessGroup]:
    parts = urlsplit(os.environ["DATABASE_URL"])
    database_url = urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1"}
    commands = {
        "worker": ["worker", "-Q", "orders,scheduler", "-n", WORKER, "--concurrency", "2", "--without-mingle"],
        "beat": ["beat"],
    }
    stack = ProcessGroup(tmp_path_factory.mktemp("celery"), env)
    for name, command in commands.items():
        stack.start(name, celery(*command, "--loglevel", "INFO"))
    try:
        declare_queues()
        wait_until(lambda: app.control.ping(destination=[WORKER], timeout=0.5), timeout=60, message=stack.logs)
        wait_until(lambda: "beat: Starting" in stack.log("beat"), timeout=60, message=stack.logs)
        yield stack
    finally:
        stack.stop_all()
        with django_db_blocker.unblock():
            wait_until(other_sessions_ended)  # before the test database is dropped at the end of the run


@pytest.fixture(autouse=True)
def flushed_stack_ready(stack: ProcessGroup) -> Iterator[None]:
    """Every test starts on a flushed Redis and a flushed database. Beat remembers the last
    change stamp it saw, and on a missing stamp row (flushed) it forgets it, missing the next
    change: stamp once and let beat see it. In production the row is never deleted."""
    declare_queues()
    beat_in_step(lambda: stack.log("beat"))
    yield
    # The database is flushed next: let the worker finish what it was given first, or its
    # transactions and the flush's TRUNCATE deadlock.
    wait_until(lambda: idle([WORKER], QUEUES), message=stack.logs)


def next_second(ahead: float) -> datetime:
    """A whole second at least ``ahead`` seconds from now: what a user schedules."""
    moment = timezone.now() + timedelta(seconds=ahead)
    return moment.replace(microsecond=0) + timedelta(seconds=1)


def events(strategy: Strategy, code: str) -> list[EventLog]:
    return list(EventLog.objects.filter(strategy=strategy, code=code).order_by("id"))


def skew(event: EventLog, scheduled: datetime) -> float:
    return (event.created_at - scheduled).total_seconds()


def test_buy_then_sell_fire_at_their_seconds(stack):
    buy = next_second(2)
    strategy = strategy_create(buy_fire_at=buy, sell_fire_at=buy + timedelta(seconds=2))

    slots.schedule_strategy(strategy)
    wait_until(lambda: len(events(strategy, "E2")) == 1, timeout=15, message=stack.logs)

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
    wait_until(lambda: timezone.now() > old + timedelta(seconds=1), timeout=15, message=stack.logs)

    assert events(strategy, "T1") == []
    wait_until(lambda: len(events(strategy, "E1")) == 1, timeout=15, message=stack.logs)
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
    wait_until(lambda: len(events(strategy, "T1")) == 1, timeout=15, message=stack.logs)

    [t1] = events(strategy, "T1")
    wait_until(lambda: len(events(strategy, "E1")) == 1, timeout=15, message=stack.logs)
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
    wait_until(lambda: timezone.now() > buy + timedelta(seconds=2), timeout=15, message=stack.logs)

    assert EventLog.objects.filter(strategy=strategy).count() == 0


def test_a_slot_run_twice_by_the_worker_fires_one_buy(stack):
    now = timezone.now()
    strategy = strategy_create(buy_fire_at=now - timedelta(seconds=1), sell_fire_at=now + timedelta(seconds=60))

    fire_slot_task.apply_async((slots.iso_utc(strategy.buy_fire_at),))
    fire_slot_task.apply_async((slots.iso_utc(strategy.buy_fire_at),))
    wait_until(lambda: len(events(strategy, "E1")) >= 1, timeout=15, message=stack.logs)
    wait_until(lambda: idle([WORKER], QUEUES), message=stack.logs)  # both slots' work over

    assert len(events(strategy, "T1")) == 1
    assert len(events(strategy, "E1")) == 1
    assert "fire_slot_task" in stack.log("worker")


def test_a_buy_that_waited_past_its_expiry_is_dropped_and_alerted(stack):
    now = timezone.now()
    strategy = strategy_create(buy_fire_at=now - timedelta(seconds=40), sell_fire_at=now + timedelta(seconds=60))

    execute_buy_task.apply_async((strategy.pk,), expires=now - timedelta(seconds=10))
    wait_until(lambda: len(events(strategy, "L4")) == 1, timeout=15, message=stack.logs)

    assert events(strategy, "E1") == []
