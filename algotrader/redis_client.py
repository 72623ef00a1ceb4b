"""One Redis connection pool per process for runtime state, from ``REDIS_URL``."""

from functools import cache

import redis
from django.conf import settings
from redis.commands.core import Script


@cache
def get_redis() -> redis.Redis:
    return redis.Redis.from_url(
        settings.REDIS_URL, decode_responses=True, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
    )


@cache
def redis_script(source: str) -> Script:
    """A Lua script on ``get_redis()``, run by EVALSHA after its first call: its text is
    not resent with every call (the lock and rate-limit scripts run on every order)."""
    return get_redis().register_script(source)
