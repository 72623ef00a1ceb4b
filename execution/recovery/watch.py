"""When a recovery runs: at the start of every worker and of the market listener, then whenever Redis has lost
what the last one wrote (the sentinel gone, or another Redis server answering), looked at every
RECOVERY_WATCH_SECONDS on a daemon thread of the process."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import redis
from celery.signals import worker_ready
from django.conf import settings
from django.db import close_old_connections
from django.dispatch import receiver

from algotrader import redis_keys
from algotrader.celery import app
from algotrader.redis_client import get_redis
from execution.recovery.runtime import server_id
from execution.recovery.system import Trigger, system_recover
from market.signals import listener_started

logger = logging.getLogger(__name__)


def runtime_intact() -> bool:
    """False once Redis has lost the data of the last recovery (or never saw one)."""
    return _runtime_lost() is None


def _runtime_lost() -> Trigger | None:
    """Why the runtime in Redis cannot be trusted, if it cannot: the sentinel is gone (a
    flush, a restart without persistence), or it was written to another server than the
    one answering now (a restart from an older snapshot, a failover to a replica): either
    way stops armed since may be missing."""
    sentinel = get_redis().get(redis_keys.recovery_sentinel())
    if sentinel is None:
        return Trigger.REDIS_FLUSH
    try:
        written_on = json.loads(str(sentinel)).get("server")
    except ValueError:
        return Trigger.REDIS_FLUSH
    return Trigger.REDIS_RESTART if written_on != server_id() else None


def recovery_watch(*, stop: threading.Event, trigger: Trigger | None, detail: dict[str, Any], interval: float) -> None:
    """A process's recovery thread: one recovery at its start (``trigger``), then a look at
    the sentinel every ``interval`` seconds, and a recovery as soon as it is gone."""
    if trigger is not None:
        _recover_quietly(trigger, detail)
    while interval > 0 and not stop.wait(interval):
        try:
            lost = _runtime_lost()
        except redis.RedisError:
            logger.warning("recovery watch: Redis unavailable", exc_info=True)
            continue
        if lost is not None:
            logger.warning("Redis lost the runtime state: recovering", extra={**detail, "trigger": str(lost)})
            _recover_quietly(lost, detail)
    close_old_connections()


def recovery_watch_start(
    *, trigger: Trigger, detail: dict[str, Any], stop: threading.Event | None = None
) -> threading.Event:
    """Start ``recovery_watch`` on a daemon thread (a start must not wait for the rebuild,
    nor a worker stop consuming for it); set ``stop`` (or the event returned) to end it."""
    stop = stop if stop is not None else threading.Event()
    thread = threading.Thread(
        target=recovery_watch,
        kwargs={"stop": stop, "trigger": trigger, "detail": detail, "interval": settings.RECOVERY_WATCH_SECONDS},
        name="recovery-watch",
        daemon=True,
    )
    thread.start()
    return stop


def _recover_quietly(trigger: Trigger, detail: dict[str, Any]) -> None:
    close_old_connections()
    try:
        system_recover(trigger=trigger, detail=detail)
    except Exception:  # the process goes on; the watch (or the next start) tries again
        logger.exception("recovery failed", extra={"trigger": str(trigger)})
    finally:
        close_old_connections()


@worker_ready.connect
def recover_on_worker_start(sender: Any = None, **kwargs: Any) -> None:
    """Recovery at every worker start, then the watch for a Redis flush; on a thread of
    the worker's main process, so the worker consumes at once."""
    queues = sorted(app.amqp.queues.consume_from) if app.amqp.queues.consume_from else []
    recovery_watch_start(
        trigger=Trigger.WORKER_START, detail={"worker": getattr(sender, "hostname", ""), "queues": queues}
    )


@receiver(listener_started)
def recover_on_listener_start(sender: Any, *, feed: str, stop: threading.Event, **kwargs: Any) -> None:
    """Recovery beside the market listener's stream, never before it (ticks must flow at
    once), watching until the listener stops."""
    recovery_watch_start(trigger=Trigger.LISTENER_START, detail={"feed": feed}, stop=stop)
