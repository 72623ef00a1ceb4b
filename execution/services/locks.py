"""The per-strategy execution lock ``lock_state:{id}``: SET NX PX with an owner token,
released only by its owner. An optimisation only (a duplicate delivery turns into X3
early); the database's compare-and-set and constraints are what prevent duplicates.

The lock lives EXECUTION_LOCK_SECONDS and its holder keeps it alive from every wait loop
(``lock_keepalive``), so a killed worker's lock frees its strategy within seconds, for
the exits queued behind it and for the settlement of what it left live."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings

from algotrader import redis_keys
from algotrader.redis_client import get_redis

# Delete only if the value is still our token: an expired lock taken by another worker
# must not be released by us.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""
_EXTEND = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_WAIT_STEP = 0.02
_held = threading.local()


def _ttl_ms() -> int:
    return int(settings.EXECUTION_LOCK_SECONDS * 1000)


def lock_acquire(*, strategy_id: int) -> str | None:
    """The owner token, or None if another worker holds the lock."""
    token = uuid.uuid4().hex
    taken = get_redis().set(redis_keys.lock_state(strategy_id), token, nx=True, px=_ttl_ms())
    return token if taken else None


def lock_release(*, strategy_id: int, token: str) -> bool:
    return bool(get_redis().eval(_RELEASE, 1, redis_keys.lock_state(strategy_id), token))


def lock_wait(*, strategy_id: int, timeout: float) -> str | None:
    """Take the lock as soon as its holder lets go, or None after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        token = lock_acquire(strategy_id=strategy_id)
        if token is not None or time.monotonic() >= deadline:
            return token
        time.sleep(_WAIT_STEP)


def lock_keepalive() -> bool:
    """Push out the expiry of the lock this thread holds, if any; False if it was lost."""
    held: tuple[int, str] | None = getattr(_held, "lock", None)
    if held is None:
        return True
    strategy_id, token = held
    return bool(get_redis().eval(_EXTEND, 1, redis_keys.lock_state(strategy_id), token, _ttl_ms()))


@contextmanager
def lock_held(*, strategy_id: int, token: str) -> Iterator[str]:
    outer = getattr(_held, "lock", None)
    _held.lock = (strategy_id, token)
    try:
        yield token
    finally:
        _held.lock = outer
        lock_release(strategy_id=strategy_id, token=token)
