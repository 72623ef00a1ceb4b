"""BUY/SELL slots in beat (T3): one one-off clocked PeriodicTask per distinct firing instant,
shared by every strategy due then, so beat holds few entries however many strategies run; a
slot's task fans out to the strategies due (``strategies.scheduling``)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone
from django_celery_beat.models import ClockedSchedule, PeriodicTask, PeriodicTasks

from algotrader.advisory_locks import transaction_lock
from algotrader.celery import task_send
from algotrader.queues import TaskName, queue_for
from monitoring.events import Event
from monitoring.services import emit
from strategies.buy_window import buy_window_seconds
from strategies.models import Strategy

SLOT_TASK = TaskName.FIRE_SLOT
SLOT_PREFIX = "strategy slot "
# A slot this close to its instant (or past it) is never deleted: beat may be sending it
# right now, and its one-off bookkeeping would re-insert a row deleted under it.
RELEASE_MARGIN = timedelta(seconds=2)
# Fired slots are kept this long (visible in admin), then the sweeper deletes them.
FIRED_SLOT_RETENTION = timedelta(minutes=10)
_SLOT_LOCK_SPACE = 0x510775  # first key of the PostgreSQL advisory locks taken per slot


# --- The lifecycle's entry points (called after the strategy's transaction commits) ---


def schedule_strategy(strategy: Strategy) -> None:
    """START: make sure the strategy's pending BUY and SELL instants have a slot."""
    now = timezone.now()
    for instant in _pending_instants(strategy):
        _slot_ensure(instant, now=now)


def reschedule_strategy(strategy: Strategy) -> None:
    """T3: the fire times moved. The new slots exist before the old ones go, so nothing
    falls in between; only slots (never other strategies) are touched, and beat reloads
    its few entries within ``CELERY_BEAT_MAX_LOOP_INTERVAL``."""
    now = timezone.now()
    for instant in _pending_instants(strategy):
        _slot_ensure(instant, now=now)
    for instant in _unneeded_slot_instants(now=now):
        _slot_release(instant, now=now)
    emit(
        Event.T3_SCHEDULER_RESYNC_REQUIRED,
        strategy=strategy,
        payload={
            "strategy_id": strategy.pk,
            "buy_fire_at": strategy.buy_fire_at.isoformat(),
            "sell_fire_at": strategy.sell_fire_at.isoformat(),
        },
    )


def unschedule_strategy(strategy: Strategy) -> None:
    """STOP or exit: the strategy is no longer RUNNING, so no fan-out claims it; its slots
    go too unless another strategy still needs them."""
    now = timezone.now()
    for instant in {strategy.buy_fire_at, strategy.sell_fire_at}:
        _slot_release(instant, now=now)


# --- Slots -----------------------------------------------------------------------------


def slot_name(instant: datetime) -> str:
    return f"{SLOT_PREFIX}{iso_utc(instant)}"


def iso_utc(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat()


def _pending_instants(strategy: Strategy) -> set[datetime]:
    instants = set()
    if strategy.buy_fired_at is None:
        instants.add(strategy.buy_fire_at)
    if strategy.sell_fired_at is None:
        instants.add(strategy.sell_fire_at)
    return instants


def _lock_slot(instant: datetime) -> None:
    """Serialize creating and deleting one slot: without it a STOP could delete a slot
    that a concurrent START has just found and relied on."""
    transaction_lock(_SLOT_LOCK_SPACE, int(instant.timestamp()) % 2**31)


def _slot_ensure(instant: datetime, *, now: datetime) -> None:
    if instant <= now:
        # Already due (a start or move at the last moment): fan out now, not at beat's next look.
        task_send(TaskName.FIRE_SLOT, args=(iso_utc(instant),), expires=buy_window_seconds())
        return
    with transaction.atomic():
        _lock_slot(instant)
        task = PeriodicTask.objects.filter(name=slot_name(instant)).first()
        if task is not None and task.enabled:
            return
        if task is None:
            task = PeriodicTask(
                name=slot_name(instant),
                task=SLOT_TASK,
                clocked=ClockedSchedule.objects.create(clocked_time=instant),
                one_off=True,
                args=json.dumps([iso_utc(instant)]),
                queue=queue_for(SLOT_TASK).value,
                expire_seconds=buy_window_seconds(),
                description="BUY/SELL slot: fans out to every strategy due at this instant.",
            )
        task.enabled = True
        task.queue = queue_for(SLOT_TASK).value  # a slot made before the fan-outs had their worker
        task.no_changes = True  # beat is told after the commit, below
        task.save()
    _tell_beat()


def slots_resync() -> int:
    """Recovery: give every future instant a running strategy waits for its enabled slot (one
    never written, or lost with a restored database) and drop slots nobody waits for. Returns
    how many slots were (re)created; past instants are the sweeper's."""
    now = timezone.now()
    running = Strategy.objects.filter(status=Strategy.Status.RUNNING).order_by()
    instants = set(
        running.filter(buy_fired_at__isnull=True, buy_fire_at__gt=now).values_list("buy_fire_at", flat=True).distinct()
    ) | set(
        running.filter(sell_fired_at__isnull=True, sell_fire_at__gt=now)
        .values_list("sell_fire_at", flat=True)
        .distinct()
    )
    slots = _slots().filter(enabled=True, clocked__clocked_time__in=instants)
    enabled = set(slots.values_list("clocked__clocked_time", flat=True))
    missing = sorted(instants - enabled)
    for instant in missing:
        _slot_ensure(instant, now=now)
    for instant in _unneeded_slot_instants(now=now):
        _slot_release(instant, now=now)
    return len(missing)


def _slot_needed(instant: datetime) -> bool:
    running = Strategy.objects.filter(status=Strategy.Status.RUNNING)
    return (
        running.filter(buy_fired_at__isnull=True, buy_fire_at=instant).exists()
        or running.filter(sell_fired_at__isnull=True, sell_fire_at=instant).exists()
    )


def _slot_release(instant: datetime, *, now: datetime) -> None:
    if instant <= now + RELEASE_MARGIN:
        return  # let it fire (harmlessly: no one is due); the sweeper deletes it later
    if not transaction.get_connection().in_atomic_block and _slot_needed(instant):
        # Only a deletion needs the lock. Two strategies of one slot ending together cannot both
        # leave it in place: each looks after its own end committed (inside a caller's transaction that
        # does not hold, so there the lock decides).
        return
    with transaction.atomic():
        _lock_slot(instant)
        if _slot_needed(instant):
            return
        deleted = _delete_slots(PeriodicTask.objects.filter(name=slot_name(instant)))
    if deleted:
        _tell_beat()


def _unneeded_slot_instants(*, now: datetime) -> list[datetime]:
    """Future slots no running strategy waits for: one index probe per slot."""
    running = Strategy.objects.filter(status=Strategy.Status.RUNNING)
    at = OuterRef("clocked__clocked_time")
    return list(
        _slots()
        .filter(enabled=True, clocked__clocked_time__gt=now + RELEASE_MARGIN)
        .annotate(
            buying=Exists(running.filter(buy_fired_at__isnull=True, buy_fire_at=at)),
            selling=Exists(running.filter(sell_fired_at__isnull=True, sell_fire_at=at)),
        )
        .filter(buying=False, selling=False)
        .values_list("clocked__clocked_time", flat=True)
    )


def fired_slots_collect(*, now: datetime) -> None:
    # Only slots beat has disabled after sending them, so none is still in its schedule.
    fired = _slots().filter(enabled=False, clocked__clocked_time__lt=now - FIRED_SLOT_RETENTION)
    if _delete_slots(fired):
        _tell_beat()


def _slots() -> QuerySet[PeriodicTask]:
    slots: QuerySet[PeriodicTask] = PeriodicTask.objects.filter(task=SLOT_TASK, name__startswith=SLOT_PREFIX)
    return slots


def _delete_slots(tasks: QuerySet[PeriodicTask]) -> int:
    clocked_ids: Iterable[int] = list(tasks.values_list("clocked_id", flat=True))
    deleted, _ = tasks.delete()
    ClockedSchedule.objects.filter(id__in=clocked_ids, periodictask__isnull=True).delete()
    return deleted


def _tell_beat() -> None:
    """Bump django-celery-beat's change stamp after our commit, not inside it: a stamp
    taken before a commit that lands after a later stamp would never be noticed, as beat
    reloads only on a newer stamp. Beat then reloads its few entries (slots due within
    five minutes and the sweeper), never the strategies."""
    PeriodicTasks.update_changed()
