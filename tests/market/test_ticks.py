"""The tick consumer's logic, called directly: last prices (M1), the stop-loss index
taken atomically (M2), the stop-loss tasks on the ``stoploss`` queue."""

import time
from decimal import Decimal

import pytest

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from market.services import stoploss_enqueue_leftovers, ticks_ingest
from market.ticks import BATCH_TYPE, ingest
from strategies.stoploss_index import stoploss_arm, stoploss_armed, stoploss_disarm
from tests.market.helpers import declare_queues, events, running_strategy, stoploss_tasks

INFY = "NSE:INFY"


def batch(*ticks: tuple[str, float, float], **extra: object) -> dict[str, object]:
    return {"type": BATCH_TYPE, "ticks": [list(tick) for tick in ticks], "received_at": time.time(), **extra}


@pytest.fixture(autouse=True)
def queues() -> None:
    declare_queues()


def test_a_tick_sets_the_last_price_and_counts_it():
    ingest(get_redis(), [[INFY, 1540.2, 1000.0], [INFY, 1540.3, 1001.0]])

    assert get_redis().hgetall(redis_keys.price("NSE", "INFY")) == {"price": "1540.3", "ts": "1001.0"}
    assert get_redis().hget(redis_keys.tick_counts(), INFY) == "2"


def test_an_older_tick_is_ignored():
    ingest(get_redis(), [[INFY, 1540.2, 1001.0]])

    result = ingest(get_redis(), [[INFY, 1500.0, 1000.0], [INFY, 1540.5, 1001.0]])

    assert result.applied == [False, True]  # the same second is not older: Kite stamps whole seconds
    assert get_redis().hget(redis_keys.price("NSE", "INFY"), "price") == "1540.5"


def test_an_older_tick_crosses_no_stop():
    ingest(get_redis(), [[INFY, 1540.2, 1001.0]])
    stoploss_arm(strategy_id=7, instrument=INFY, trigger_price=Decimal("1500.00"))

    result = ingest(get_redis(), [[INFY, 1490.0, 1000.0]])

    assert result.triggers == []
    assert stoploss_armed(instrument=INFY) == {7: Decimal("1500.0")}


def test_a_stop_triggers_at_its_price_and_only_once():
    stoploss_arm(strategy_id=1, instrument=INFY, trigger_price=Decimal("1500.05"))
    stoploss_arm(strategy_id=2, instrument=INFY, trigger_price=Decimal("1400.00"))

    first = ingest(get_redis(), [[INFY, 1500.10, 1.0], [INFY, 1500.05, 2.0]])
    second = ingest(get_redis(), [[INFY, 1490.0, 3.0]])

    assert [(t.strategy_id, t.price) for t in first.triggers] == [(1, 1500.05)]
    assert second.triggers == []
    assert stoploss_armed(instrument=INFY) == {2: Decimal("1400.0")}


def test_a_disarmed_stop_never_triggers():
    stoploss_arm(strategy_id=1, instrument=INFY, trigger_price=Decimal("1500"))
    stoploss_disarm(strategy_id=1, instrument=INFY)

    assert ingest(get_redis(), [[INFY, 1000.0, 1.0]]).triggers == []


@pytest.mark.django_db
def test_a_triggered_strategy_gets_m2_and_exactly_one_stoploss_task():
    strategy = running_strategy()
    other = running_strategy()
    stoploss_arm(strategy_id=strategy.pk, instrument=INFY, trigger_price=Decimal("1500"))
    stoploss_arm(strategy_id=other.pk, instrument=INFY, trigger_price=Decimal("1400"))

    ticks_ingest(message=batch((INFY, 1499.9, 1.0)))
    ticks_ingest(message=batch((INFY, 1450.0, 2.0)))

    assert stoploss_tasks() == [strategy.pk]
    [m2] = events("M2")
    assert m2.strategy_id == strategy.pk and m2.user_id == strategy.owner_id
    assert m2.payload["instrument"] == INFY and m2.payload["price"] == "1499.9"
    assert get_redis().hlen(redis_keys.stoploss_fired()) == 0


@pytest.mark.django_db
def test_m1_is_recorded_for_first_ticks_only_and_counted_for_all():
    ticks_ingest(message=batch((INFY, 1540.0, 1.0), ("NSE:TCS", 3500.0, 1.0), first=[INFY]))
    ticks_ingest(message=batch((INFY, 1541.0, 2.0)))

    [m1] = events("M1")
    assert m1.payload == {"instrument": INFY, "price": "1540.0", "exchange_ts": 1.0}
    assert get_redis().hget(redis_keys.tick_counts(), INFY) == "2"


@pytest.mark.django_db
def test_a_trigger_whose_task_was_never_sent_is_enqueued_by_the_sweep():
    stoploss_arm(strategy_id=42, instrument=INFY, trigger_price=Decimal("1500"))
    ingest(get_redis(), [[INFY, 1490.0, 1.0]])  # taken out of sl:, then the consumer "died"

    assert stoploss_enqueue_leftovers(older_than=60) == []
    swept = stoploss_enqueue_leftovers(older_than=0)

    assert [t.strategy_id for t in swept] == [42]
    assert stoploss_tasks() == [42]
    assert stoploss_enqueue_leftovers(older_than=0) == []


def test_one_tick_moves_only_the_crossed_stops_among_ten_thousand():
    redis = get_redis()
    redis.zadd(redis_keys.stop_losses(INFY), {str(i): 1000.0 + i * 0.01 for i in range(10_000)})

    result = ingest(redis, [[INFY, 1099.97, 1.0]])  # crosses the three stops at 1099.97..1099.99

    assert sorted(t.strategy_id for t in result.triggers) == [9997, 9998, 9999]
    assert redis.zcard(redis_keys.stop_losses(INFY)) == 9_997


def test_per_tick_work_does_not_grow_with_the_stops_on_the_symbol():
    def median_seconds(stops: int) -> float:
        redis = get_redis()
        redis.flushdb()
        # Every stop far below the price: the tick crosses none, whatever their number.
        redis.zadd(redis_keys.stop_losses(INFY), {str(i): 100.0 + i * 0.001 for i in range(stops)})
        samples = []
        for n in range(200):
            start = time.perf_counter()
            ingest(redis, [[INFY, 1540.0, float(n)]])
            samples.append(time.perf_counter() - start)
        assert redis.zcard(redis_keys.stop_losses(INFY)) == stops
        # The fastest sample is the tick's own work; slower ones waited for the CPU or for a
        # Redis server busy with other clients (the parallel workers, other test runs).
        return min(samples)

    few, many = median_seconds(10), median_seconds(10_000)

    print(f"fastest tick with 10 stops {few * 1e6:.0f} us, with 10,000 stops {many * 1e6:.0f} us")  # noqa: T201
    assert many < few * 2 + 0.0005
