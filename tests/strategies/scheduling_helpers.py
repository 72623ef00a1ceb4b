"""What the scheduling tests look at: the order tasks waiting in the broker's queue, and
a real beat that has seen the schedule's latest change."""

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django_celery_beat.models import PeriodicTasks

from algotrader.celery import app
from algotrader.queues import CeleryQueue
from algotrader.redis_client import get_redis
from tests.waiting import wait_until

SCHEDULE_CHANGED = "DatabaseScheduler: Schedule changed"


@dataclass(frozen=True)
class Queued:
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    expires: str | None


def declare_queues() -> None:
    """As a worker does at start-up: the tests flush Redis, bindings included."""
    with app.connection_for_write() as connection:
        for queue in app.conf.task_queues:
            queue(connection.default_channel).declare()


def queued(queue: CeleryQueue = CeleryQueue.ORDERS) -> list[Queued]:
    """The messages waiting in ``queue``, oldest first."""
    found = []
    for raw in reversed(get_redis().lrange(queue.value, 0, -1)):
        message = json.loads(raw)
        args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        headers = message["headers"]
        found.append(Queued(headers["task"], args, kwargs, headers.get("expires")))
    return found


def beat_in_step(beat_log: Callable[[], str]) -> None:
    """Until a running beat has taken a change of the schedule for one: beat forgets the
    stamp it saw when the stamp row is deleted (a flushed test database) and takes the
    next stamp it reads for its first, not for a change, so a change made then would be
    missed. Stamp until beat logs a change it saw; in production the row is never deleted."""
    seen = beat_log().count(SCHEDULE_CHANGED)

    def noticed() -> bool:
        if beat_log().count(SCHEDULE_CHANGED) > seen:
            return True
        PeriodicTasks.update_changed()
        return False

    wait_until(noticed, interval=0.3, message=beat_log)
