"""Beat reads its schedule whole even while a slot is deleted under it."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_celery_beat.clockedschedule import clocked as clocked_schedule
from django_celery_beat.models import ClockedSchedule, PeriodicTask

from algotrader.beat_scheduler import SnapshotDatabaseScheduler
from algotrader.celery import app
from strategies.slots import SLOT_TASK

pytestmark = pytest.mark.django_db


def test_a_slot_deleted_between_beat_s_reads_does_not_leave_a_task_without_its_schedule():
    """The stock scheduler reads tasks, then their schedules: a STOP releasing a slot in
    between left beat with a task whose schedule is None, and beat died on it."""
    clocked = ClockedSchedule.objects.create(clocked_time=timezone.now() + timedelta(seconds=30))
    PeriodicTask.objects.create(name="slot-under-test", task=SLOT_TASK, clocked=clocked, one_off=True)
    released: list[str] = []

    def release_after_the_first_read(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if not released and sql.startswith("SELECT") and "django_celery_beat_periodictask" in sql:
            released.append(sql)
            PeriodicTask.objects.filter(name="slot-under-test").delete()
            ClockedSchedule.objects.filter(pk=clocked.pk).delete()
        return result

    scheduler = SnapshotDatabaseScheduler(app=app, lazy=True)
    with connection.execute_wrapper(release_after_the_first_read):
        schedule = scheduler.all_as_schedule()

    assert released, "the schedule was read"
    entry = schedule["slot-under-test"]  # read whole, as it was before the release
    assert isinstance(entry.schedule, clocked_schedule)
    assert entry.schedule.clocked_time == clocked.clocked_time
