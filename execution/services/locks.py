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
from algotrader.redis_client import get_redis, redis_script

# Delete only if the value is still our token: an expired lock taken by another worker
# must not be released by us.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""
# Renew our lock; if it is gone (Redis flushed, restarted or failed over), take it back
# before anyone else does, so settlement cannot mistake a live execution for a dead one.
# Taken by another worker: lost (0).
_EXTEND = """
local holder = redis.call('get', KEYS[1])
if holder == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
if not holder then
    redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
return 0
"""
_WAIT_STEP = 0.02
# The holder renews once this share of the lock's life has passed since it last did: the
# wait loops call ``lock_keepalive`` before every broker call and rate-limit step, and on
# the stop-loss path each renewal was a Redis round trip before the order. At least 90%
# of the lock's life (EXECUTION_LOCK_SECONDS >= 10) is always left.
_KEEPALIVE_AFTER = 0.1
_held = threading.local()


def ttl_ms() -> int:
    return int(settings.EXECUTION_LOCK_SECONDS * 1000)


def new_token() -> str:
    return uuid.uuid4().hex


def lock_acquire(*, strategy_id: int) -> str | None:
    """The owner token, or None if another worker holds the lock."""
    token = new_token()
    taken = get_redis().set(redis_keys.lock_state(strategy_id), token, nx=True, px=ttl_ms())
    return token if taken else None


def lock_release(*, strategy_id: int, token: str) -> bool:
    return bool(redis_script(_RELEASE)(keys=[redis_keys.lock_state(strategy_id)], args=[token]))


def lock_wait(*, strategy_id: int, timeout: float) -> str | None:
    """Take the lock as soon as its holder lets go, or None after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        token = lock_acquire(strategy_id=strategy_id)
        if token is not None or time.monotonic() >= deadline:
            return token
        time.sleep(_WAIT_STEP)


def lock_keepalive() -> bool:
    """Push out the expiry of the lock this thread holds, if any and if a tenth of its life
    has passed since it was taken or last renewed; False if it was lost."""
    held: tuple[int, str, float] | None = getattr(_held, "lock", None)
    if held is None:
        return True
    strategy_id, token, renewed_at = held
    now = time.monotonic()
    if now - renewed_at < settings.EXECUTION_LOCK_SECONDS * _KEEPALIVE_AFTER:
        return True
    kept = bool(redis_script(_EXTEND)(keys=[redis_keys.lock_state(strategy_id)], args=[token, ttl_ms()]))
    if kept:
        _held.lock = (strategy_id, token, now)
    return kept


@contextmanager
def lock_held(*, strategy_id: int, token: str) -> Iterator[str]:
    """Mark ``token`` (just acquired, or taken over) as this thread's lock for
    ``lock_keepalive``, and release it at the end unless it was handed over."""
    outer = getattr(_held, "lock", None)
    outer_handed = getattr(_held, "handed", None)
    _held.lock = (strategy_id, token, time.monotonic())
    _held.handed = None
    try:
        yield token
    finally:
        handed = _held.handed == token
        _held.lock, _held.handed = outer, outer_handed
        if not handed:
            lock_release(strategy_id=strategy_id, token=token)


def lock_token() -> str | None:
    """The token of the lock this thread holds, if any."""
    held: tuple[int, str, float] | None = getattr(_held, "lock", None)
    return None if held is None else held[1]


def lock_hand_over() -> str | None:
    """Leave the lock this thread holds to the task that will finish its execution (an
    order's follower): ``lock_held`` will not release it, and the taker renews it from
    the token returned (``lock_take_over``). None if this thread holds no lock. Until the
    taker starts, the lock simply lives out its life: a follower that never comes (lost
    with a killed worker) frees the strategy for settlement within EXECUTION_LOCK_SECONDS."""
    held: tuple[int, str, float] | None = getattr(_held, "lock", None)
    if held is None:
        return None
    _held.handed = held[1]
    return held[1]


def lock_take_over(*, strategy_id: int, token: str) -> bool:
    """Take over a lock handed over with ``token``: renewed (or taken back if it expired and
    nobody took it meanwhile); False if another worker holds it now."""
    return bool(redis_script(_EXTEND)(keys=[redis_keys.lock_state(strategy_id)], args=[token, ttl_ms()]))
