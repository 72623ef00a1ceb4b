"""The per-strategy execution lock ``lock_state:{id}`` (SET NX PX with an owner token): an optimisation only,
turning a duplicate delivery into X3 early; the database's claims are what prevent duplicates. Holders keep it
alive, so a killed worker's lock frees its strategy for queued exits and settlement within EXECUTION_LOCK_SECONDS."""

from __future__ import annotations

import time
import uuid
from types import TracebackType

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
# Take a lock from a holder judged gone (only if held: a free lock is taken the usual way).
_SEIZE = """
if redis.call('get', KEYS[1]) then
    redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
return 0
"""
_WAIT_STEP = 0.02
# ``keepalive`` runs at every wait step: renewing only once this share of the lock's life has passed keeps
# Redis off the stop-loss's path to the order, while nine tenths of the life are always left.
_KEEPALIVE_AFTER = 0.1
# The order-rate counter's life: a second's budget, and a margin for clocks.
_RATE_KEY_MS = 2000


def ttl_ms() -> int:
    return int(settings.EXECUTION_LOCK_SECONDS * 1000)


class ExecutionLock:
    """A held ``lock_state:{id}``, released at the end of its ``with`` unless handed over.
    ``rate_key``: the slot in the account's order rate taken with it, if one was."""

    def __init__(self, *, strategy_id: int, token: str, rate_key: str | None = None) -> None:
        self.strategy_id = strategy_id
        self.token = token
        self.rate_key = rate_key
        self._renewed_at = time.monotonic()
        self._handed = False

    def __enter__(self) -> ExecutionLock:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if not self._handed:
            self.release()

    def release(self) -> bool:
        return bool(redis_script(_RELEASE)(keys=[redis_keys.lock_state(self.strategy_id)], args=[self.token]))

    def keepalive(self) -> bool:
        """Push out the lock's expiry if a tenth of its life has passed since it was taken
        or last renewed; False if it was lost to another worker."""
        now = time.monotonic()
        if now - self._renewed_at < settings.EXECUTION_LOCK_SECONDS * _KEEPALIVE_AFTER:
            return True
        kept = self._extend()
        if kept:
            self._renewed_at = now
        return kept

    def hand_over(self) -> str:
        """Leave the lock to the task that finishes the execution (an order's follower), which
        continues it from the token returned (``lock_take_over``). Until then the lock lives out
        its life, so a follower lost with a killed worker frees the strategy for settlement."""
        self._handed = True
        return self.token

    def rate_give_back(self) -> None:
        """Return the order-rate slot taken with the lock, for an order not placed after all."""
        rate_key, self.rate_key = self.rate_key, None
        if rate_key is not None:
            _rate_give_back(rate_key)

    def _extend(self) -> bool:
        return bool(redis_script(_EXTEND)(keys=[redis_keys.lock_state(self.strategy_id)], args=[self.token, ttl_ms()]))


def lock_acquire(*, strategy_id: int, rate_key: str | None = None, rate_limit: int = 0) -> ExecutionLock | None:
    """The lock, or None if another worker holds it. ``rate_key``: a slot in that second's
    order rate (at most ``rate_limit``) is counted with it in one pipeline (not a script: the
    two keys need not share a cluster slot), and kept only with the lock and within the limit."""
    token = uuid.uuid4().hex
    key = redis_keys.lock_state(strategy_id)
    if rate_key is None:
        taken = get_redis().set(key, token, nx=True, px=ttl_ms())
        return ExecutionLock(strategy_id=strategy_id, token=token) if taken else None
    pipe = get_redis().pipeline(transaction=False)
    pipe.set(key, token, nx=True, px=ttl_ms())
    pipe.incr(rate_key)
    pipe.pexpire(rate_key, _RATE_KEY_MS)
    taken, count, _ = pipe.execute()
    if not taken or int(count) > rate_limit:
        _rate_give_back(rate_key)
        rate_key = None
    return ExecutionLock(strategy_id=strategy_id, token=token, rate_key=rate_key) if taken else None


def lock_idle_seconds(*, strategy_id: int) -> float | None:
    """How long since the lock's holder last took or renewed it (its life minus what is
    left); None if nobody holds it. A live holder renews it from every wait loop."""
    left = get_redis().pttl(redis_keys.lock_state(strategy_id))
    return None if left < 0 else (ttl_ms() - left) / 1000


def lock_seize(*, strategy_id: int) -> ExecutionLock | None:
    """The lock taken from its holder, which settlement judged gone (a follower that left
    a filled exit unconfirmed); None if nobody holds it. A holder still alive finds its
    lock lost at its next keepalive and stops."""
    token = uuid.uuid4().hex
    seized = redis_script(_SEIZE)(keys=[redis_keys.lock_state(strategy_id)], args=[token, ttl_ms()])
    return ExecutionLock(strategy_id=strategy_id, token=token) if seized else None


def lock_wait(*, strategy_id: int, timeout: float) -> ExecutionLock | None:
    """Take the lock as soon as its holder lets go, or None after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        lock = lock_acquire(strategy_id=strategy_id)
        if lock is not None or time.monotonic() >= deadline:
            return lock
        time.sleep(_WAIT_STEP)


def lock_take_over(*, strategy_id: int, token: str) -> ExecutionLock | None:
    """Continue a lock handed over with ``token``: renewed (or taken back if it expired and
    nobody took it meanwhile); None if another worker holds it now."""
    lock = ExecutionLock(strategy_id=strategy_id, token=token)
    return lock if lock._extend() else None


def _rate_give_back(rate_key: str) -> None:
    pipe = get_redis().pipeline(transaction=False)
    pipe.decr(rate_key)
    pipe.pexpire(rate_key, _RATE_KEY_MS)  # should the key have expired meanwhile, the -1 does not stay
    pipe.execute()
