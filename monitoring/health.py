"""Checks behind /healthz (this web process is alive) and /readyz (the system can trade: also
beat, a worker per queue, a fresh feed where stops wait on it). Apps above register their
checks here (``feed_check_register``), since monitoring, the bottom layer, imports none of them."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection

from algotrader import redis_keys
from algotrader.queues import CeleryQueue
from algotrader.redis_client import get_redis

# A feed check: the feed as last seen (``healthy`` and what was observed), or None when
# nothing is to be watched (an idle system expects no feed).
FeedCheck = Callable[[], dict[str, Any] | None]
_feed_checks: dict[str, FeedCheck] = {}


def feed_check_register(*, name: str, check: FeedCheck) -> None:
    _feed_checks[name] = check


def feeds() -> dict[str, dict[str, Any]]:
    """Every registered feed check that has something to report, by name."""
    seen = {name: check() for name, check in _feed_checks.items()}
    return {name: feed for name, feed in seen.items() if feed is not None}


def database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return bool(cursor.fetchone() == (1,))
    except Exception:
        return False


def redis_ok() -> bool:
    try:
        return bool(get_redis().ping())
    except Exception:
        return False


def readiness() -> dict[str, dict[str, Any]]:
    """Each check's result: ``ok`` and what was seen. Heartbeats older than
    READY_HEARTBEAT_MAX_AGE_SECONDS (or missing) fail their check."""
    checks: dict[str, dict[str, Any]] = {
        "database": {"ok": database_ok()},
        "redis": {"ok": redis_ok()},
    }
    if not checks["redis"]["ok"]:
        for name in ("beat", *(f"queue:{queue.value}" for queue in CeleryQueue)):
            checks[name] = {"ok": False, "error": "redis unreachable"}
        return checks
    now = time.time()
    max_age = settings.READY_HEARTBEAT_MAX_AGE_SECONDS
    redis = get_redis()
    names = ["beat", *(f"queue:{queue.value}" for queue in CeleryQueue)]
    keys = [redis_keys.heartbeat("beat"), *(redis_keys.heartbeat(f"worker:{queue.value}") for queue in CeleryQueue)]
    for name, beat in zip(names, redis.mget(keys), strict=True):
        age = round(now - float(beat), 1) if beat else None
        checks[name] = {"ok": age is not None and age <= max_age, "heartbeat_age_seconds": age}
    for queue in CeleryQueue:
        checks[f"queue:{queue.value}"]["depth"] = int(redis.llen(queue.value))
    for name, feed in feeds().items():  # only when something is subscribed: an idle system expects no feed
        checks[name] = {"ok": bool(feed["healthy"]), **{k: v for k, v in feed.items() if k != "healthy"}}
    return checks
