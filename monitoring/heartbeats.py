"""Heartbeats that /readyz reads: a worker refreshes a key per queue it consumes with its event
heartbeat, sent from the worker's own loop so a busy pool does not silence it; beat's
``beat_heartbeat_task``, stamped by a worker, proves beat alive and its messages delivered."""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.signals import heartbeat_sent

from algotrader import redis_keys
from algotrader.celery import app
from algotrader.redis_client import get_redis

logger = logging.getLogger(__name__)

TTL_SECONDS = 300  # a dead worker's key disappears; readiness judges the age, not the TTL


def heartbeat_stamp(*, name: str) -> None:
    get_redis().set(redis_keys.heartbeat(name), repr(time.time()), ex=TTL_SECONDS)


@heartbeat_sent.connect
def worker_heartbeat(sender: Any = None, **_: Any) -> None:
    queues = app.amqp.queues.consume_from or app.amqp.queues
    try:
        pipe = get_redis().pipeline(transaction=False)
        now = repr(time.time())
        for queue in queues:
            pipe.set(redis_keys.heartbeat(f"worker:{queue}"), now, ex=TTL_SECONDS)
        pipe.execute()
    except Exception:  # never disturb the worker's loop: /readyz will say it is not ready
        logger.warning("worker heartbeat not written", exc_info=True)
