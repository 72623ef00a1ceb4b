"""BUY, SELL, STOP and stop-loss through the services on the paper broker: exactly the
orders they should place, the position moves, the stop armed and disarmed, the events."""

import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from execution import tasks
from execution.models import Order
from execution.services import locks, strategy_buy_execute, strategy_sell_execute, strategy_stoploss_execute
from strategies.models import Strategy
from strategies.stoploss_index import stoploss_armed
from tests.execution.helpers import codes, orders, paper_book

pytestmark = pytest.mark.django_db


def test_buy_fills_once_fixes_the_stop_from_the_fill_and_arms_it(make_strategy):
    strategy = make_strategy()

    order = strategy_buy_execute(strategy_id=strategy.pk)

    strategy.refresh_from_db()
    assert order is not None and order.status == Order.Status.COMPLETE
    [book] = paper_book(strategy)
    assert (book.tag, book.side, book.quantity) == (order.tag, "BUY", 1)
    assert strategy.position == Strategy.Position.BOUGHT
    assert strategy.entry_price == order.fill_price == book.average_price
    assert strategy.stop_trigger_price == (order.fill_price * Decimal("0.99")).quantize(Decimal("0.01"))
    assert stoploss_armed(instrument="NSE:INFY") == {strategy.pk: strategy.stop_trigger_price}
    assert codes(strategy) == ["E1", "X2", "L2", "B3", "L2", "E5", "L1"]


def test_sell_at_sell_time_exits_the_position_sold(make_strategy):
    strategy = make_strategy()
    strategy_buy_execute(strategy_id=strategy.pk)

    order = strategy_sell_execute(strategy_id=strategy.pk, reason="SELL")

    strategy.refresh_from_db()
    assert order is not None and order.status == Order.Status.COMPLETE and order.reason == "SELL"
    assert [o.side for o in paper_book(strategy)] == ["BUY", "SELL"]
    assert (strategy.status, strategy.position, strategy.exit_reason) == ("EXITED", "SOLD", "SELL")
    assert stoploss_armed(instrument="NSE:INFY") == {}
    assert codes(strategy)[-5:] == ["B3", "L2", "E5", "S5", "L1"]


def test_stoploss_exits_by_sl_and_a_later_sell_places_nothing(make_strategy):
    strategy = make_strategy()
    strategy_buy_execute(strategy_id=strategy.pk)

    strategy_stoploss_execute(strategy_id=strategy.pk)
    strategy_sell_execute(strategy_id=strategy.pk, reason="SELL")

    strategy.refresh_from_db()
    assert [(o.side, o.reason, o.status) for o in orders(strategy)] == [
        ("BUY", "BUY", "COMPLETE"),
        ("SELL", "STOPLOSS", "COMPLETE"),
    ]
    assert len(paper_book(strategy)) == 2
    assert (strategy.status, strategy.position, strategy.exit_reason) == ("EXITED", "EXITED_BY_SL", "STOPLOSS")


def test_stoploss_after_a_sell_claimed_the_exit_places_nothing(make_strategy):
    strategy = make_strategy(position="BOUGHT")
    strategy_sell_execute(strategy_id=strategy.pk, reason="SELL")

    assert strategy_stoploss_execute(strategy_id=strategy.pk) is None

    assert [o.side for o in paper_book(strategy)] == ["SELL"]
    assert [o.reason for o in orders(strategy)] == ["SELL"]


def test_stop_exits_the_position_with_reason_stop(make_strategy):
    strategy = make_strategy(position="EXITING", exit_reason="STOP", status="STOPPED")

    strategy_sell_execute(strategy_id=strategy.pk, reason="STOP")
    strategy_sell_execute(strategy_id=strategy.pk, reason="STOP")

    strategy.refresh_from_db()
    assert [(o.reason, o.status) for o in orders(strategy)] == [("STOP", "COMPLETE")]
    assert (strategy.status, strategy.position, strategy.exit_reason) == ("EXITED", "SOLD", "STOP")


def test_sell_with_no_position_just_ends_the_strategy(make_strategy):
    strategy = make_strategy()

    assert strategy_sell_execute(strategy_id=strategy.pk, reason="SELL") is None

    strategy.refresh_from_db()
    assert (strategy.status, strategy.position, strategy.exit_reason) == ("EXITED", "NONE", "SELL")
    assert paper_book(strategy) == [] and orders(strategy) == []


def test_a_buy_delivered_past_its_valid_time_is_refused(make_strategy, settings):
    strategy = make_strategy()
    Strategy.objects.filter(pk=strategy.pk).update(
        buy_fire_at=timezone.now() - timedelta(seconds=settings.BUY_GRACE_SECONDS + 5)
    )

    assert strategy_buy_execute(strategy_id=strategy.pk) is None

    strategy.refresh_from_db()
    assert strategy.position == "NONE" and orders(strategy) == [] and paper_book(strategy) == []
    assert "L4" in codes(strategy)
    # The late policy ends it: with no position it has nothing left to do.
    assert (strategy.status, strategy.exit_reason) == ("EXITED", "REJECTED") and codes(strategy)[-1] == "S5"


def test_a_rejected_buy_puts_the_position_back_and_ends_the_strategy(make_strategy):
    strategy = make_strategy()
    Strategy.objects.filter(pk=strategy.pk).update(symbol="NOSUCHSYMBOL")  # the paper broker refuses it

    order = strategy_buy_execute(strategy_id=strategy.pk)

    strategy.refresh_from_db()
    assert order is not None and order.status == Order.Status.REJECTED
    assert (strategy.status, strategy.position, strategy.exit_reason) == ("EXITED", "NONE", "REJECTED")
    assert {"B4", "L4", "E5", "S5"} <= set(codes(strategy))


def test_a_held_lock_turns_a_duplicate_buy_into_x3(make_strategy):
    strategy = make_strategy()
    lock = locks.lock_acquire(strategy_id=strategy.pk)

    assert strategy_buy_execute(strategy_id=strategy.pk) is None

    assert "X3" in codes(strategy) and orders(strategy) == []
    assert lock is not None and lock.release()


def test_the_lock_is_released_only_by_its_owner(make_strategy):
    lock = locks.lock_acquire(strategy_id=1)

    assert locks.lock_acquire(strategy_id=1) is None
    assert not locks.ExecutionLock(strategy_id=1, token="someone-else").release()
    assert lock is not None and lock.release()
    assert locks.lock_acquire(strategy_id=1) is not None


@pytest.mark.parametrize(
    ("position", "run"),
    [
        ("NONE", lambda sid: tasks.execute_buy_task.apply(args=(sid,))),
        ("BOUGHT", lambda sid: tasks.execute_sell_task.apply(args=(sid,), kwargs={"reason": "SELL"})),
        ("BOUGHT", lambda sid: tasks.execute_stoploss_task.apply(args=(sid,))),
    ],
    ids=["buy", "sell", "stoploss"],
)
def test_each_order_task_run_twice_has_one_effect(make_strategy, position, run):
    strategy = make_strategy(position=position)

    run(strategy.pk)
    run(strategy.pk)

    assert len(paper_book(strategy)) == 1
    assert len(orders(strategy)) == 1


def test_an_exit_outlasts_a_lock_left_by_a_dead_worker(make_strategy, settings):
    settings.ORDER_FOLLOW_SECONDS = 0.2
    settings.ORDER_RETRY_SECONDS_BUY = 0.2
    strategy = make_strategy(position="BOUGHT")
    assert locks.lock_acquire(strategy_id=strategy.pk) is not None  # never released

    order = strategy_stoploss_execute(strategy_id=strategy.pk)

    assert order is not None and order.status == Order.Status.COMPLETE
    strategy.refresh_from_db()
    assert strategy.position == "EXITED_BY_SL" and "X3" in codes(strategy)


def test_a_working_holder_keeps_its_lock_and_a_dead_ones_lock_expires(settings):
    settings.EXECUTION_LOCK_SECONDS = 0.3
    lock = locks.lock_acquire(strategy_id=1)
    assert lock is not None
    with lock:
        for _ in range(6):  # the clock runs past twice the lock's life, the holder renewing it
            time.sleep(0.1)
            assert lock.keepalive()
        assert locks.lock_acquire(strategy_id=1) is None

    assert locks.lock_acquire(strategy_id=2) is not None  # a worker that dies holding it
    time.sleep(0.4)  # past its life, unrenewed
    assert locks.lock_acquire(strategy_id=2) is not None


def test_a_holder_takes_its_lock_back_after_redis_lost_it(settings):
    """Redis flushed mid-execution: the holder's next keepalive re-takes the lock, so
    settlement cannot take the live execution's order for an abandoned one."""
    from algotrader import redis_keys
    from algotrader.redis_client import get_redis

    settings.EXECUTION_LOCK_SECONDS = 0.2  # every keepalive renews
    lock = locks.lock_acquire(strategy_id=1)
    assert lock is not None
    with lock:
        get_redis().flushdb()
        time.sleep(0.05)  # past a tenth of the life: the keepalive asks Redis

        assert lock.keepalive()
        assert get_redis().get(redis_keys.lock_state(1)) == lock.token
        assert locks.lock_acquire(strategy_id=1) is None

        get_redis().set(redis_keys.lock_state(1), "another-worker")  # expired and taken meanwhile
        time.sleep(0.05)  # past a tenth of the life: the keepalive asks Redis
        assert not lock.keepalive()


def test_keepalive_renews_the_lock_only_once_a_tenth_of_its_life_has_passed(settings):
    from algotrader import redis_keys
    from algotrader.redis_client import get_redis

    settings.EXECUTION_LOCK_SECONDS = 10
    key = redis_keys.lock_state(1)
    lock = locks.lock_acquire(strategy_id=1)
    assert lock is not None
    with lock:
        get_redis().pexpire(key, 5000)  # a renewal would put it back to 10 s

        assert lock.keepalive()  # just taken: no round trip before the order
        assert get_redis().pttl(key) <= 5000

        settings.EXECUTION_LOCK_SECONDS = 0.2  # as if a tenth of the life had passed
        time.sleep(0.05)  # and now it has
        assert lock.keepalive()
        assert 0 < get_redis().pttl(key) <= 200

    assert get_redis().exists(key) == 0
