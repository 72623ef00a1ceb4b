"""A whole recovery (X4): Redis rebuilt from the database (X1), beat's slots resynced and the interrupted order
work settled, all through the engine's own compare-and-set services, so it is safe at any time. One runs at a
time (a PostgreSQL advisory lock) so concurrent starts do not repeat the work; nothing depends on it otherwise."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from algotrader.advisory_locks import lock_held, session_lock
from execution.recovery.runtime import RuntimeLoaded, queues_declare, runtime_rebuild, sentinel_clear, sentinel_write
from execution.recovery.settlement import orders_settle_interrupted
from monitoring.events import Event
from monitoring.services import emit
from strategies import slots

logger = logging.getLogger(__name__)

_LOCK_SPACE = 0x5EC0E7  # the PostgreSQL advisory lock held while a recovery runs
_LOCK_WAIT_SECONDS = 120.0
_SETTLE_PASSES = 10  # rounds of the settlement (each takes at most its own batch)


class Trigger(StrEnum):
    """What started a recovery (X4's ``trigger``)."""

    WORKER_START = "worker_start"
    LISTENER_START = "listener_start"
    COMMAND = "command"
    REDIS_FLUSH = "redis_flush"  # the sentinel is gone: the data was flushed or lost
    REDIS_RESTART = "redis_restart"  # another Redis server answers: restarted from an old snapshot, or failed over


@dataclass
class Recovery:
    """X4: one whole recovery."""

    trigger: str
    loaded: RuntimeLoaded
    slots_created: int = 0
    orders_settled: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


# --- the whole recovery ----------------------------------------------------------------


def system_recover(*, trigger: Trigger, wait: bool = False, detail: dict[str, Any] | None = None) -> Recovery | None:
    """Rebuild the runtime, then reconcile what the crash or flush left; X1 and X4.
    Returns None (and does nothing) if another recovery is running and ``wait`` is False:
    that one's work is as good as ours (a flush after it began is seen again by the
    watch, since the sentinel is set before anything is rebuilt)."""
    with _recovery_lock(wait=wait) as held:
        if not held:
            logger.info("recovery already running elsewhere", extra={"trigger": str(trigger)})
            return None
        started = time.monotonic()
        sentinel_write(trigger=str(trigger))
        try:
            queues_declare()
            loaded = runtime_rebuild()
        except Exception:
            sentinel_clear()
            raise
        emit(
            Event.X1_RUNTIME_STATE_LOADED,
            message=f"Runtime rebuilt from the database: {loaded.strategies} running strategies, "
            f"{loaded.stops_armed} stops armed",
            payload={"trigger": str(trigger), **asdict(loaded)},
        )
        report = Recovery(trigger=str(trigger), loaded=loaded)
        report.slots_created = _step(report, "slots", _slots_resync)
        report.orders_settled = _step(report, "orders", _orders_settle)
        report.seconds = round(time.monotonic() - started, 3)
        emit(
            Event.X4_SYSTEM_RECOVERY,
            message=f"System recovery after {_TRIGGER_TEXT[trigger]}",
            payload={
                "trigger": str(trigger),
                **(detail or {}),
                "strategies": loaded.strategies,
                "stops_armed": loaded.stops_armed,
                "slots_created": report.slots_created,
                "orders_settled": report.orders_settled,
                "errors": report.errors,
                "seconds": report.seconds,
            },
        )
        logger.info("recovery done", extra={"trigger": str(trigger), **asdict(report)})
        return report


_TRIGGER_TEXT = {
    Trigger.WORKER_START: "a worker start",
    Trigger.LISTENER_START: "the market listener's start",
    Trigger.COMMAND: "manage.py recover",
    Trigger.REDIS_FLUSH: "Redis lost its data",
    Trigger.REDIS_RESTART: "Redis restarted or failed over",
}


def _step(report: Recovery, name: str, run: Any) -> int:
    """One reconciliation step; a failing one (the broker down) is reported, not fatal:
    the periodic settlement and the next recovery try again."""
    try:
        return int(run())
    except Exception as error:
        logger.exception("recovery step failed", extra={"step": name})
        report.errors.append(f"{name}: {type(error).__name__}")
        return 0


@contextmanager
def _recovery_lock(*, wait: bool) -> Iterator[bool]:
    """A PostgreSQL session lock (freed if the process dies), not a Redis one: a flush
    must not free it under a running recovery."""
    with session_lock(_LOCK_SPACE, wait_seconds=_LOCK_WAIT_SECONDS if wait else 0) as held:
        yield held


def recovery_running() -> bool:
    """Whether some process holds the recovery lock now."""
    return lock_held(_LOCK_SPACE)


def _slots_resync() -> int:
    return slots.slots_resync()


def _orders_settle() -> int:
    """The periodic settlement run to the end now, a batch a pass; its own rules decide what is
    an orphan (idle past ORDER_SETTLE_AFTER_SECONDS, or LOST_TASK_AFTER_SECONDS for a fired
    task, with its strategy's lock free)."""
    settled = 0
    for _ in range(_SETTLE_PASSES):
        done = orders_settle_interrupted()
        settled += done
        if not done:
            break
    return settled
