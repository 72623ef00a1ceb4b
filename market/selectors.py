"""Reads of the market app's runtime state: the feed's freshness for /healthz."""

import time
from typing import Any

import redis

from algotrader import redis_keys
from algotrader.redis_client import get_redis

# The listener refreshes its status every second; three missed beats mean it is not running.
LISTENER_SILENT_AFTER = 5.0


def feed_health() -> dict[str, Any] | None:
    """The feed as the listener last reported it, or None when there is nothing to watch
    (no listener status, or nothing subscribed): an idle system is healthy. ``healthy`` is
    False only when stop-losses are armed and their prices are stale or nobody listens."""
    try:
        status = get_redis().hgetall(redis_keys.feed_status())
    except redis.RedisError:
        return None
    if not status or int(status.get("subscribed", 0)) == 0:
        return None
    now = time.time()
    armed = int(status.get("armed", 0))
    stale = int(status.get("stale", 0))
    listener_up = now - float(status.get("updated_at", 0)) < LISTENER_SILENT_AFTER and "stopped_at" not in status
    connected = listener_up and status.get("connected") == "1"
    last_frame_at = float(status.get("last_frame_at", 0))
    return {
        "listener": "up" if listener_up else "down",
        "connected": connected,
        "subscribed": int(status.get("subscribed", 0)),
        "armed": armed,
        "stale": stale,
        "last_tick_age_seconds": round(now - last_frame_at, 1) if last_frame_at else None,
        "healthy": armed == 0 or (connected and stale == 0),
    }
