"""BUY/SELL scheduling without processes: slots in beat's table, the fan-out's
once-only claim, the late policy, the sweeper. (Real beat and worker: test_scheduling_live.)"""

import threading
from datetime import timedelta
from types import SimpleNamespace

import psycopg
import pytest
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import ClockedSchedule, PeriodicTask

from algotrader import redis_keys
from algotrader.queues import CeleryQueue
from algotrader.redis_client import get_redis
from execution.tasks import execute_buy_task
from monitoring.models import EventLog
from strategies import scheduling, slots
from strategies.models import Strategy
from strategies.runtime import runtime_load
from strategies.tasks import alert_expired_order_task, fire_slot_task, sweep_due_task
from tests.factories import BrokerAccountFactory
from tests.strategies.factories_scheduling import strategy_create
from tests.strategies.scheduling_helpers import declare_queues, queued

pytestmark = pytest.mark.django_db

BUY = "execution.tasks.execute_buy_task"
SELL = "execution.tasks.execute_sell_task"


@pytest.fixture(autouse=True)
def queues() -> None:
    declare_queues()


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


def slot_instants() -> set[str]:
    return {task.args.strip('[]"') for task in PeriodicTask.objects.filter(task=slots.SLOT_TASK, enabled=True)}


def iso(moment) -> str:
    return slots.iso_utc(moment)


def codes(strategy: Strategy) -> list[str]:
    return list(EventLog.objects.filter(strategy=strategy).order_by("id").values_list("code", flat=True))


def test_start_makes_one_one_off_slot_per_distinct_instant():
    now = timezone.now().replace(microsecond=0)
    account = BrokerAccountFactory.create()
    first = strategy_create(account=account, buy_fire_at=now + seconds(60), sell_fire_at=now + seconds(120))
    second = strategy_create(account=account, buy_fire_at=now + seconds(60), sell_fire_at=now + seconds(180))

    slots.schedule_strategy(first)
    slots.schedule_strategy(second)
    slots.schedule_strategy(second)  # idempotent

    assert slot_instants() == {iso(now + seconds(60)), iso(now + seconds(120)), iso(now + seconds(180))}
    slot = PeriodicTask.objects.get(name=slots.slot_name(now + seconds(60)))
    assert slot.one_off and slot.clocked.clocked_time == now + seconds(60) and slot.queue == "scheduler"
    assert slot.expire_seconds == 30


def test_stop_removes_the_slots_no_other_strategy_needs():
    now = timezone.now().replace(microsecond=0)
    account = BrokerAccountFactory.create()
    stopped = strategy_create(account=account, buy_fire_at=now + seconds(60), sell_fire_at=now + seconds(120))
    other = strategy_create(account=account, buy_fire_at=now + seconds(60), sell_fire_at=now + seconds(180))
    slots.schedule_strategy(stopped)
    slots.schedule_strategy(other)

    Strategy.objects.filter(pk=stopped.pk).update(status=Strategy.Status.STOPPED)
    slots.unschedule_strategy(stopped)

    assert slot_instants() == {iso(now + seconds(60)), iso(now + seconds(180))}
    assert ClockedSchedule.objects.count() == 2


@pytest.mark.django_db(transaction=True)  # outside a transaction, as an exit releases its slots
def test_the_last_of_a_slots_strategies_to_end_removes_it(django_assert_num_queries):
    now = timezone.now().replace(microsecond=0)
    account = BrokerAccountFactory.create()
    first, second = (
        strategy_create(account=account, buy_fire_at=now - seconds(60), sell_fire_at=now + seconds(120))
        for _ in range(2)
    )
    for strategy in (first, second):
        slots.schedule_strategy(strategy)

    Strategy.objects.filter(pk=first.pk).update(status=Strategy.Status.EXITED)
    with django_assert_num_queries(2):  # still needed: a read for each side, no locked transaction
        slots.unschedule_strategy(first)
    assert slot_instants() == {iso(now + seconds(120))}

    Strategy.objects.filter(pk=second.pk).update(status=Strategy.Status.EXITED)
    slots.unschedule_strategy(second)
    assert slot_instants() == set()


def test_reschedule_moves_the_slot_and_records_t3():
    now = timezone.now().replace(microsecond=0)
    strategy = strategy_create(buy_fire_at=now + seconds(60), sell_fire_at=now + seconds(120))
    slots.schedule_strategy(strategy)

    strategy.buy_fire_at = now + seconds(90)
    strategy.save(update_fields=["buy_fire_at"])
    slots.reschedule_strategy(strategy)

    assert slot_instants() == {iso(now + seconds(90)), iso(now + seconds(120))}
    t3 = EventLog.objects.get(code="T3")
    assert t3.strategy_id == strategy.pk and t3.user_id == strategy.owner_id
    assert t3.payload["buy_fire_at"] == (now + seconds(90)).isoformat()


def test_a_slot_delivered_twice_fires_one_buy():
    now = timezone.now()
    strategy = strategy_create(buy_fire_at=now - seconds(1), sell_fire_at=now + seconds(60))

    fire_slot_task(iso(strategy.buy_fire_at))
    fire_slot_task(iso(strategy.buy_fire_at))

    assert codes(strategy) == ["T1"]
    assert [(q.task, q.args) for q in queued()] == [(BUY, [strategy.pk])]
    strategy.refresh_from_db()
    assert strategy.buy_fired_at is not None and strategy.sell_fired_at is None


def test_the_buy_task_expires_at_the_end_of_its_grace_window():
    now = timezone.now()
    strategy = strategy_create(buy_fire_at=now - seconds(1), sell_fire_at=now + seconds(60))

    scheduling.fire_due(source="slot")

    [message] = queued()
    assert message.expires == (strategy.buy_fire_at + seconds(30)).isoformat()


def test_a_slot_fires_only_what_is_due():
    now = timezone.now()
    due = strategy_create(buy_fire_at=now - seconds(1), sell_fire_at=now + seconds(60))
    later = strategy_create(buy_fire_at=now + seconds(30), sell_fire_at=now + seconds(60))

    report = scheduling.fire_due(slot=due.buy_fire_at, source="slot")

    assert (report.buys, report.sells, report.skipped) == (1, 0, 0)
    assert codes(due) == ["T1"] and codes(later) == []


def test_nothing_fires_for_a_stopped_strategy():
    now = timezone.now()
    strategy = strategy_create(
        buy_fire_at=now - seconds(2), sell_fire_at=now - seconds(1), status=Strategy.Status.STOPPED
    )

    sweep_due_task()

    assert codes(strategy) == [] and queued() == []


def test_a_buy_past_its_grace_window_is_skipped_with_an_alert_and_the_strategy_ends(settings):
    settings.BUY_GRACE_SECONDS = 30
    now = timezone.now().replace(microsecond=0)
    strategy = strategy_create(buy_fire_at=now - seconds(31), sell_fire_at=now + seconds(60))
    slots.schedule_strategy(strategy)
    runtime_load(strategy)
    assert iso(now + seconds(60)) in slot_instants()

    report = scheduling.fire_due(source="sweep")

    assert (report.buys, report.skipped) == (0, 1)
    assert codes(strategy) == ["T1", "L4", "S5"]
    t1 = EventLog.objects.get(strategy=strategy, code="T1")
    assert t1.payload["skipped"] is True and t1.payload["reason"] == "late" and t1.payload["late_seconds"] >= 31
    assert EventLog.objects.get(strategy=strategy, code="S5").payload["reason"] == "REJECTED"
    assert queued() == []  # no BUY; the START's own due slot is the scheduler's
    assert [q.task for q in queued(CeleryQueue.SCHEDULER)] == [slots.SLOT_TASK]
    strategy.refresh_from_db()
    assert strategy.buy_fired_at is not None  # claimed: never retried
    assert (strategy.status, strategy.position, strategy.exit_reason) == ("EXITED", "NONE", "REJECTED")
    assert iso(now + seconds(60)) not in slot_instants()  # its SELL timer is gone
    assert not get_redis().exists(redis_keys.strategy(strategy.pk))  # and its runtime copy


def test_ending_after_a_skipped_buy_leaves_a_stopped_or_bought_strategy_alone():
    now = timezone.now()
    stopped = strategy_create(buy_fire_at=now, sell_fire_at=now + seconds(60), status="STOPPED")
    bought = strategy_create(buy_fire_at=now, sell_fire_at=now + seconds(60), position="BOUGHT")
    flat = strategy_create(buy_fire_at=now, sell_fire_at=now + seconds(60))

    ended = scheduling.strategies_end_unbought(strategy_ids=[stopped.pk, bought.pk, flat.pk, flat.pk])

    assert ended == [flat.pk]  # once
    assert [(s.status, s.position) for s in Strategy.objects.filter(pk__in=[stopped.pk, bought.pk]).order_by("pk")] == [
        ("STOPPED", "NONE"),
        ("RUNNING", "BOUGHT"),
    ]
    assert codes(stopped) == codes(bought) == [] and codes(flat) == ["S5"]


def test_a_late_sell_always_runs():
    now = timezone.now()
    strategy = strategy_create(
        buy_fire_at=now - seconds(7200), sell_fire_at=now - seconds(3600), buy_fired_at=now - seconds(7200)
    )

    report = scheduling.fire_due(source="sweep")

    assert (report.buys, report.sells, report.skipped) == (0, 1, 0)
    assert codes(strategy) == ["T2"]
    assert [(q.task, q.args, q.kwargs) for q in queued()] == [(SELL, [strategy.pk], {"reason": "SELL"})]


def test_the_sweeper_fires_an_overdue_strategy():
    now = timezone.now()
    strategy = strategy_create(buy_fire_at=now - seconds(3), sell_fire_at=now + seconds(60))

    sweep_due_task()

    assert codes(strategy) == ["T1"]
    assert [q.args for q in queued()] == [[strategy.pk]]


def test_a_start_at_an_instant_already_due_fans_out_at_once():
    now = timezone.now()
    strategy = strategy_create(buy_fire_at=now - seconds(1), sell_fire_at=now + seconds(60))

    slots.schedule_strategy(strategy)

    assert [(q.task, q.args) for q in queued(CeleryQueue.SCHEDULER)] == [(slots.SLOT_TASK, [iso(strategy.buy_fire_at)])]
    assert slot_instants() == {iso(strategy.sell_fire_at)}


def test_firing_cost_grows_with_the_strategies_due_not_all_strategies(django_assert_max_num_queries):
    now = timezone.now()
    account = BrokerAccountFactory.create()
    due = [strategy_create(account=account, buy_fire_at=now - seconds(1), sell_fire_at=now + seconds(60))]
    due += [strategy_create(account=account, buy_fire_at=now - seconds(1), sell_fire_at=now + seconds(60))]
    Strategy.objects.bulk_create(
        [
            Strategy(
                **{
                    f.attname: getattr(due[0], f.attname)
                    for f in Strategy._meta.concrete_fields
                    if f.attname not in {"id", "buy_fire_at", "sell_fire_at"}
                },
                buy_fire_at=now + seconds(3600),
                sell_fire_at=now + seconds(7200),
            )
            for _ in range(300)
        ]
    )

    with django_assert_max_num_queries(12):
        report = scheduling.fire_due(source="slot")

    assert report.buys == 2
    assert sorted(q.args[0] for q in queued()) == sorted(s.pk for s in due)


def test_a_large_burst_is_fired_in_batches_each_strategy_once():
    now = timezone.now()
    account = BrokerAccountFactory.create()
    first = strategy_create(account=account, buy_fire_at=now - seconds(1), sell_fire_at=now + seconds(60))
    Strategy.objects.bulk_create(
        [
            Strategy(
                **{f.attname: getattr(first, f.attname) for f in Strategy._meta.concrete_fields if f.attname != "id"}
            )
            for _ in range(scheduling.FIRE_BATCH + 10)
        ]
    )

    report = scheduling.fire_due(source="slot")
    again = scheduling.fire_due(source="slot")

    assert report.buys == scheduling.FIRE_BATCH + 11 and again.buys == 0
    ids = [q.args[0] for q in queued()]
    assert len(ids) == len(set(ids)) == scheduling.FIRE_BATCH + 11
    assert EventLog.objects.filter(code="T1").count() == scheduling.FIRE_BATCH + 11


def test_an_expired_buy_task_is_alerted_not_silent_and_the_strategy_ends():
    strategy = strategy_create(buy_fire_at=timezone.now() - seconds(40), sell_fire_at=timezone.now() + seconds(60))

    alert_expired_order_task(sender=execute_buy_task, request=SimpleNamespace(args=[strategy.pk]), expired=True)
    alert_expired_order_task(sender=execute_buy_task, request=SimpleNamespace(args=[strategy.pk]), expired=False)

    assert codes(strategy) == ["L4", "S5"]
    strategy.refresh_from_db()
    assert (strategy.status, strategy.position, strategy.exit_reason) == ("EXITED", "NONE", "REJECTED")


def test_the_sweeper_deletes_fired_slots_after_their_retention():
    now = timezone.now().replace(microsecond=0)
    strategy = strategy_create(buy_fire_at=now + seconds(60), sell_fire_at=now + seconds(120))
    slots.schedule_strategy(strategy)
    PeriodicTask.objects.filter(name=slots.slot_name(strategy.buy_fire_at)).update(enabled=False)
    ClockedSchedule.objects.filter(clocked_time=strategy.buy_fire_at).update(clocked_time=now - timedelta(hours=1))

    sweep_due_task()

    assert not PeriodicTask.objects.filter(name=slots.slot_name(strategy.buy_fire_at)).exists()
    assert PeriodicTask.objects.filter(name=slots.slot_name(strategy.sell_fire_at)).exists()


def test_reschedule_keeps_a_slot_another_strategy_still_needs():
    now = timezone.now().replace(microsecond=0)
    account = BrokerAccountFactory.create()
    moved = strategy_create(account=account, buy_fire_at=now + seconds(60), sell_fire_at=now + seconds(120))
    staying = strategy_create(account=account, buy_fire_at=now + seconds(60), sell_fire_at=now + seconds(120))
    slots.schedule_strategy(moved)
    slots.schedule_strategy(staying)

    Strategy.objects.filter(pk=moved.pk).update(buy_fire_at=now + seconds(90))
    moved.refresh_from_db()
    slots.reschedule_strategy(moved)

    assert slot_instants() == {iso(now + seconds(60)), iso(now + seconds(90)), iso(now + seconds(120))}


@pytest.mark.django_db(transaction=True)
def test_fan_outs_racing_on_the_same_due_strategies_fire_each_once():
    now = timezone.now()
    first = strategy_create(buy_fire_at=now - seconds(1), sell_fire_at=now + seconds(60))
    Strategy.objects.bulk_create(
        [
            Strategy(
                **{f.attname: getattr(first, f.attname) for f in Strategy._meta.concrete_fields if f.attname != "id"}
            )
            for _ in range(2 * scheduling.FIRE_BATCH)
        ]
    )
    reports: list[scheduling.FireReport] = []

    def fan_out() -> None:
        try:
            reports.append(scheduling.fire_due(slot=now, source="slot"))
        finally:
            connection.close()

    threads = [threading.Thread(target=fan_out) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(report.buys for report in reports) == 2 * scheduling.FIRE_BATCH + 1
    ids = [q.args[0] for q in queued()]
    assert len(ids) == len(set(ids)) == 2 * scheduling.FIRE_BATCH + 1
    assert EventLog.objects.filter(code="T1").count() == 2 * scheduling.FIRE_BATCH + 1


@pytest.mark.django_db(transaction=True)
def test_a_fan_out_that_finds_another_running_leaves_the_work_to_it():
    now = timezone.now()
    strategy = strategy_create(buy_fire_at=now - seconds(1), sell_fire_at=now + seconds(60))
    params = connection.get_connection_params()

    with psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"}) as running_fan_out:
        running_fan_out.execute("SELECT pg_advisory_lock(%s, 0)", [scheduling._FAN_OUT_LOCK_SPACE])
        skipped = scheduling.fire_due(slot=now, source="slot")
        running_fan_out.execute("SELECT pg_advisory_unlock(%s, 0)", [scheduling._FAN_OUT_LOCK_SPACE])
    fired = scheduling.fire_due(slot=now, source="slot")

    assert (skipped.buys, fired.buys) == (0, 1)
    assert codes(strategy) == ["T1"]
