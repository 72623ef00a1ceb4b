"""Exact-time BUY and SELL (T1, T2): slot tasks and the sweeper claim each due strategy once,
record T1/T2 and enqueue its order task; a BUY past its grace is skipped and its strategy ends."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from algotrader.advisory_locks import session_lock
from algotrader.celery import app, task_send
from algotrader.queues import TaskName, queue_for
from monitoring.events import Event
from monitoring.services import Emission, alert_raise, emit_many
from strategies import services as strategy_services
from strategies.buy_window import buy_valid_until, buy_window_open, buy_window_seconds
from strategies.models import Strategy
from strategies.slots import fired_slots_collect, iso_utc

logger = logging.getLogger(__name__)

# Strategies claimed, recorded and enqueued per transaction: small enough that the first
# BUYs reach the workers within milliseconds of the slot, large enough to batch the writes.
FIRE_BATCH = 250
# Redis commands buffered per pipeline by a fan-out's publish batch (a message and its
# task-sent event are one command each).
PUBLISH_BATCH = 2 * FIRE_BATCH
# Passes of one fan-out: a strategy still due after them is locked by another transaction
# (a STOP or an update in flight); the sweeper fires it once that commits.
FAN_OUT_PASSES = 3
# A slot's own instant is trusted over the worker's clock by at most this much (hosts
# drift), so a slot never finds "nothing due yet" because its worker's clock is behind.
CLOCK_TOLERANCE = timedelta(seconds=1)
_FAN_OUT_LOCK_SPACE = 0x510776  # the advisory lock held while a fan-out runs


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def fire_field(self) -> str:
        return "buy_fire_at" if self is Side.BUY else "sell_fire_at"

    @property
    def fired_field(self) -> str:
        return "buy_fired_at" if self is Side.BUY else "sell_fired_at"

    @property
    def event(self) -> Event:
        return Event.T1_BUY_TRIGGERED if self is Side.BUY else Event.T2_SELL_TRIGGERED


@dataclass
class FireReport:
    """What one fan-out did: tasks enqueued per side, and late BUYs skipped."""

    buys: int = 0
    sells: int = 0
    skipped: int = 0


# --- Fan-out -------------------------------------------------------------------------


def fire_due(*, slot: datetime | None = None, source: str) -> FireReport:
    """Claim every strategy whose BUY or SELL is due, record T1/T2 and enqueue its order task.
    The claim is a conditional UPDATE that skips locked rows, so each side fires exactly once
    however many fan-outs run."""
    report = FireReport()
    cutoff_slot = slot
    for _ in range(FAN_OUT_PASSES):
        with _fan_out_lock() as held:
            if not held:
                break  # the fan-out that holds it looks again for what is due once it is done
            for side in Side:
                while _fire_batch(side, cutoff=_cutoff(cutoff_slot), source=source, report=report) == FIRE_BATCH:
                    pass
        # Due while we held the lock, from a slot that found it held: ours to fire.
        if not _anything_due(timezone.now()):
            break
        cutoff_slot = None
    if report.buys or report.sells or report.skipped:
        logger.info(
            "strategies fired",
            extra={"source": source, "slot": slot.isoformat() if slot else None, **report.__dict__},
        )
    return report


def _cutoff(slot: datetime | None) -> datetime:
    now = timezone.now()
    return now if slot is None else max(now, min(slot, now + CLOCK_TOLERANCE))


def _anything_due(cutoff: datetime) -> bool:
    running = Strategy.objects.filter(status=Strategy.Status.RUNNING)
    return (
        running.filter(buy_fired_at__isnull=True, buy_fire_at__lte=cutoff).exists()
        or running.filter(sell_fired_at__isnull=True, sell_fire_at__lte=cutoff).exists()
    )


@contextmanager
def _fan_out_lock() -> Iterator[bool]:
    """One fan-out at a time (a session lock, freed if the worker dies): two would only split
    the publishing between worker processes and leave none to start the BUYs already enqueued."""
    with session_lock(_FAN_OUT_LOCK_SPACE) as held:
        yield held


def _fire_batch(side: Side, *, cutoff: datetime, source: str, report: FireReport) -> int:
    grace = buy_window_seconds()
    # Messages go out before the commit, so a Redis outage rolls the claim back for the sweeper
    # instead of leaving strategies claimed with no order task; a repeated task is refused by
    # the execution engine's compare-and-set.
    with transaction.atomic():
        now = timezone.now()
        rows = _claim(side, cutoff=cutoff, now=now)
        emissions: list[Emission] = []
        skipped_by_instant: dict[datetime, list[int]] = {}
        to_send: list[tuple[int, datetime]] = []
        skipped: list[int] = []
        for strategy_id, owner_id, fire_at in rows:
            late = (now - fire_at).total_seconds()
            payload = {
                "strategy_id": strategy_id,
                "fire_at": fire_at.isoformat(),
                "late_seconds": round(late, 3),
                "source": source,
            }
            if side is Side.BUY and not buy_window_open(fire_at=fire_at, now=now):
                message = f"BUY skipped: due {late:.1f} s ago, past its {grace} s grace window. The strategy ends."
                emissions.append(
                    Emission(
                        side.event,
                        owner_id,
                        strategy_id,
                        message,
                        {**payload, "skipped": True, "reason": "late"},
                    )
                )
                emissions.append(
                    Emission(Event.L4_ALERT_TRIGGERED, owner_id, strategy_id, message, {**payload, "alert": "buy_late"})
                )
                skipped_by_instant.setdefault(fire_at, []).append(strategy_id)
                report.skipped += 1
                skipped.append(strategy_id)
            else:
                emissions.append(Emission(side.event, owner_id, strategy_id, payload=payload))
                to_send.append((strategy_id, fire_at))
        if emissions:
            emit_many(emissions)
        for fire_at, skipped in skipped_by_instant.items():
            # One incident for operators per late instant (beat or the workers were behind),
            # however many strategies it skipped; each owner has the L4 above on the timeline.
            alert_raise(
                kind="buy_late",
                key=f"buy:{iso_utc(fire_at)}",
                severity="warning",
                message=f"{len(skipped)} BUY(s) due at {iso_utc(fire_at)} skipped: past the {grace} s grace window",
                payload={"fire_at": iso_utc(fire_at), "strategies": skipped[:100], "count": len(skipped)},
            )
        _send(side, to_send)
    strategies_end_unbought(strategy_ids=skipped)
    if side is Side.BUY:
        report.buys += len(to_send)
    else:
        report.sells += len(to_send)
    return len(rows)


def _claim(side: Side, *, cutoff: datetime, now: datetime) -> list[tuple[int, int, datetime]]:
    """Mark up to FIRE_BATCH due strategies as fired; return (id, owner id, fire time)."""
    fire, fired = side.fire_field, side.fired_field
    table = Strategy._meta.db_table
    # The inner WHERE is the partial index's predicate, so the scan reads only the due.
    sql = (
        f"UPDATE {table} SET {fired} = %s WHERE id IN ("  # noqa: S608 - names are ours, values are bound
        f"SELECT id FROM {table} WHERE status = 'RUNNING' AND {fired} IS NULL AND {fire} <= %s "
        f"ORDER BY {fire} LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING id, owner_id, {fire}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [now, cutoff, FIRE_BATCH])
        rows: list[tuple[int, int, datetime]] = cursor.fetchall()
    return sorted(rows, key=lambda row: (row[2], row[0]))


def _send(side: Side, to_send: list[tuple[int, datetime]]) -> None:
    """Enqueue the order tasks in one kombu publish batch, so a burst does not hold up the worker
    that should be starting the BUYs. A failed flush raises inside the claim's transaction,
    which then rolls back."""
    if not to_send:
        return
    with app.producer_or_acquire() as producer, producer.batch(max_size=PUBLISH_BATCH):
        # Declared once a batch: kombu's per-message declare is costly at a burst.
        producer.maybe_declare(app.amqp.queues[queue_for(TaskName.EXECUTE_BUY).value])
        for strategy_id, fire_at in to_send:
            # No publish retries: a retried pipeline flush could enqueue twice.
            if side is Side.BUY:
                # Past its grace window a queued BUY is dropped by the worker (and alerted).
                expires = buy_valid_until(fire_at)
                task_send(
                    TaskName.EXECUTE_BUY,
                    args=(strategy_id,),
                    producer=producer,
                    expires=expires,
                    retry=False,
                    **_publish_options((strategy_id,), {}),
                )
            else:
                expires = fire_at + timedelta(seconds=settings.SELL_EXPIRES_SECONDS)
                task_send(
                    TaskName.EXECUTE_SELL,
                    args=(strategy_id,),
                    kwargs={"reason": Strategy.ExitReason.SELL.value},
                    producer=producer,
                    expires=expires,
                    retry=False,
                    **_publish_options((strategy_id,), {"reason": Strategy.ExitReason.SELL.value}),
                )


def _publish_options(args: tuple[int, ...], kwargs: dict[str, str]) -> dict[str, Any]:
    """The ``argsrepr``/``kwargsrepr`` options, and ``declare`` (nothing: the batch declared
    the queue), all absent from celery-types' stubs."""
    return {"argsrepr": repr(args), "kwargsrepr": repr(kwargs), "declare": []}


def sweep() -> FireReport:
    """The safety net: fire whatever is due and was missed (no slot, a late or lost slot
    message, beat restarting), then delete fired slots past their retention."""
    report = fire_due(source="sweep")
    fired_slots_collect(now=timezone.now())
    return report


def order_task_expired(*, strategy_id: int, side: Side) -> None:
    """An order task sat in the queue past its ``expires`` and the worker dropped it."""
    strategy = Strategy.objects.select_related("owner").filter(pk=strategy_id).first()
    message = f"{side} dropped: it waited in the queue past its expiry"
    if side is Side.BUY:
        message += ". The strategy ends."
    logger.error(message, extra={"strategy_id": strategy_id})
    alert_raise(
        kind="order_task_expired",
        key=f"strategy:{strategy_id}:{side}",
        strategy=strategy,
        message=message,
        payload={"strategy_id": strategy_id, "side": str(side)},
    )
    if side is Side.BUY:  # a dropped BUY is a late BUY skipped: the strategy ends
        strategies_end_unbought(strategy_ids=[strategy_id])


def strategies_end_unbought(*, strategy_ids: Iterable[int]) -> list[int]:
    """End now, as a rejected BUY ends (S5), the strategies whose BUY was skipped as late, since
    with no position their SELL would only end them; return the ids ended. Only one still
    RUNNING with no position is ended, under its row lock: a stopped one or a BUY in flight stays."""
    ended = []
    for strategy_id in strategy_ids:
        with transaction.atomic():
            unbought = Strategy.objects.select_for_update().filter(
                pk=strategy_id, status=Strategy.Status.RUNNING, position=Strategy.Position.NONE
            )
            if unbought.exists() and strategy_services.strategy_exit(
                strategy_id=strategy_id,
                reason=Strategy.ExitReason.REJECTED,
                position=Strategy.Position.NONE,
                at=timezone.now(),
            ):
                ended.append(strategy_id)
    return ended
