"""The execution lock as an object: taken one way, released by its owner at the end of
its block unless handed over, and continued by the taker from the token."""

import pytest

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from execution.services import locks


def test_a_lock_is_released_at_the_end_of_its_block():
    lock = locks.lock_acquire(strategy_id=1)
    assert lock is not None

    with lock:
        assert locks.lock_acquire(strategy_id=1) is None

    assert get_redis().exists(redis_keys.lock_state(1)) == 0


def test_a_handed_over_lock_outlives_its_block_and_its_taker_continues_it():
    lock = locks.lock_acquire(strategy_id=1)
    assert lock is not None

    with lock:
        token = lock.hand_over()

    assert get_redis().get(redis_keys.lock_state(1)) == token
    taken = locks.lock_take_over(strategy_id=1, token=token)
    assert taken is not None and taken.keepalive()
    with taken:
        assert locks.lock_acquire(strategy_id=1) is None
    assert get_redis().exists(redis_keys.lock_state(1)) == 0


def test_a_lock_taken_meanwhile_by_another_worker_cannot_be_taken_over():
    get_redis().set(redis_keys.lock_state(1), "another-worker")

    assert locks.lock_take_over(strategy_id=1, token="handed-over") is None


@pytest.mark.parametrize(("limit", "kept"), [(1, True), (0, False)])
def test_the_stoplosss_rate_slot_is_kept_with_the_lock_only_within_the_limit(limit, kept):
    rate_key = redis_keys.order_rate(7, 1)

    lock = locks.lock_acquire(strategy_id=1, rate_key=rate_key, rate_limit=limit)

    assert lock is not None and (lock.rate_key is not None) is kept
    assert int(get_redis().get(rate_key) or 0) == (1 if kept else 0)
    lock.rate_give_back()
    assert int(get_redis().get(rate_key) or 0) == 0
