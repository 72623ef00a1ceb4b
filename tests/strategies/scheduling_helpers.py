"""What the scheduling tests look at: the order tasks waiting in the broker's queue."""

import base64
import json
from dataclasses import dataclass
from typing import Any

from algotrader.celery import app
from algotrader.queues import CeleryQueue
from algotrader.redis_client import get_redis


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
