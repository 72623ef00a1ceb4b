"""Trailing stops and targets on the tick path: the script raises a trailing stop with each new
high (never lowers it) in the pass that checks the stops, takes a reached target out once, and
does it all in the batch's one round trip; the consumer sends their exits with their reason and
follows the raised stops at a throttled rate (P4, the record, the protective order)."""

import time
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings as django_settings
from redis import Redis

from algotrader import redis_keys
from algotrader.queues import CeleryQueue, TaskName
from algotrader.redis_client import get_redis
from market.services import stoploss_enqueue_leftovers, ticks_ingest
from market.ticks import BATCH_TYPE, TrailMove, Trigger, ingest
from market.trailing import TrailFollower
from strategies.exit_index import exits_arm, targets_armed, trail_spec, trails_armed
from strategies.models import Strategy
from strategies.stoploss_index import stoploss_arm, stoploss_armed
from tests.market.helpers import declare_queues, events, queued_tasks, running_strategy, stoploss_task_calls

INFY = "NSE:INFY"


@pytest.fixture(autouse=True)
def queues() -> None:
    declare_queues()


def arm(
    strategy_id: int,
    *,
    stop: str,
    high: str = "100",
    percent: str | None = None,
    points: str | None = None,
    target: str | None = None,
) -> None:
    stoploss_arm(strategy_id=strategy_id, instrument=INFY, trigger_price=Decimal(stop))
    exits_arm(
        strategy_id=strategy_id,
        instrument=INFY,
        target_price=Decimal(target) if target else None,
        trail=trail_spec(percent=Decimal(percent) if percent else None, points=Decimal(points) if points else None),
        high=Decimal(high),
    )


def tick(price: float, ts: float) -> list[list[object]]:
    return [[INFY, price, ts]]


def test_a_new_high_raises_the_trailing_stop_in_the_same_pass():
    arm(1, stop="98", percent="2")

    result = ingest(get_redis(), tick(105.0, 1.0))

    assert result.moves == [TrailMove(1, INFY, 105.0, 102.9)]
    assert stoploss_armed(instrument=INFY) == {1: Decimal("102.9")}
    assert trails_armed(instrument=INFY) == {1: (Decimal("105.0"), "p|2|1")}


def test_a_trailing_stop_is_never_lowered():
    arm(1, stop="98", points="3")
    ingest(get_redis(), tick(110.0, 1.0))

    falls = ingest(get_redis(), [[INFY, 109.0, 2.0], [INFY, 108.5, 3.0]])

    assert falls.moves == [] and falls.triggers == []
    assert stoploss_armed(instrument=INFY) == {1: Decimal("107.0")}


def test_a_fixed_stop_above_the_trails_stays_until_the_trail_passes_it():
    arm(1, stop="99", points="5")

    below = ingest(get_redis(), tick(103.0, 1.0))  # the trail's 98 is under the fixed 99
    above = ingest(get_redis(), tick(106.0, 2.0))

    assert below.moves == []
    assert trails_armed(instrument=INFY)[1][0] == Decimal("106.0")  # the high follows all the same
    assert above.moves == [TrailMove(1, INFY, 106.0, 101.0)]


def test_a_raised_stop_crossed_fires_as_trail_and_takes_the_target_with_it():
    arm(1, stop="98", percent="2", target="120")
    ingest(get_redis(), tick(105.0, 1.0))

    result = ingest(get_redis(), tick(102.5, 2.0))

    assert result.triggers == [Trigger(1, INFY, 102.5, 2.0, "TRAIL")]
    assert stoploss_armed(instrument=INFY) == {} and targets_armed(instrument=INFY) == {}
    assert trails_armed(instrument=INFY) == {}


def test_a_stop_the_trail_never_raised_fires_as_stoploss():
    arm(1, stop="99", percent="2")

    result = ingest(get_redis(), tick(98.5, 1.0))

    assert [t.reason for t in result.triggers] == ["STOPLOSS"]


def test_a_target_fires_once_at_its_price_and_takes_the_stop_with_it():
    arm(1, stop="95", target="110")
    arm(2, stop="95", target="115")

    short = ingest(get_redis(), tick(109.95, 1.0))
    reached = ingest(get_redis(), [[INFY, 110.0, 2.0], [INFY, 111.0, 3.0]])
    later = ingest(get_redis(), tick(112.0, 4.0))

    assert short.triggers == []
    assert reached.triggers == [Trigger(1, INFY, 110.0, 2.0, "TARGET")]
    assert later.triggers == []
    assert stoploss_armed(instrument=INFY) == {2: Decimal("95.0")}
    assert targets_armed(instrument=INFY) == {2: Decimal("115.0")}


def test_a_trail_whose_stop_is_gone_is_dropped_not_followed():
    arm(1, stop="98", percent="2")
    get_redis().zrem(redis_keys.stop_losses(INFY), "1")  # taken by an exit elsewhere

    result = ingest(get_redis(), tick(105.0, 1.0))

    assert result.moves == [] and trails_armed(instrument=INFY) == {}
    assert stoploss_armed(instrument=INFY) == {}  # never put back


class CountingRedis(Redis):
    commands = 0

    def execute_command(self, *args, **options):
        CountingRedis.commands += 1
        return super().execute_command(*args, **options)


def test_a_batch_with_moves_targets_and_stops_is_one_round_trip():
    arm(1, stop="98", percent="2")
    arm(2, stop="95", target="104")
    arm(3, stop="100.5")
    client = CountingRedis.from_url(django_settings.REDIS_URL, decode_responses=True)
    ingest(client, [["NSE:TCS", 1.0, 0.5]])  # loads the script once
    CountingRedis.commands = 0

    result = ingest(client, [[INFY, 105.0, 1.0], ["NSE:TCS", 2.0, 1.0]])

    assert CountingRedis.commands == 1
    assert {(t.strategy_id, t.reason) for t in result.triggers} == {(2, "TARGET")}
    assert [m.strategy_id for m in result.moves] == [1]


def test_per_tick_work_does_not_grow_with_the_trails_and_targets_on_the_symbol():
    def fastest_seconds(armed: int) -> float:
        redis = get_redis()
        redis.flushdb()
        # Every high above the price and every target far above it: the tick moves and takes none.
        redis.zadd(redis_keys.trail_highs(INFY), {str(i): 2000.0 + i * 0.001 for i in range(armed)})
        redis.zadd(redis_keys.targets(INFY), {str(i): 3000.0 + i * 0.001 for i in range(armed)})
        samples = []
        for n in range(200):
            start = time.perf_counter()
            ingest(redis, [[INFY, 1540.0, float(n)]])
            samples.append(time.perf_counter() - start)
        return min(samples)

    few, many = fastest_seconds(10), fastest_seconds(10_000)

    print(f"fastest tick with 10 trails {few * 1e6:.0f} us, with 10,000 {many * 1e6:.0f} us")  # noqa: T201
    assert many < few * 2 + 0.0005


def batch(*ticks: tuple[str, float, float]) -> dict[str, object]:
    return {"type": BATCH_TYPE, "ticks": [list(t) for t in ticks], "received_at": time.time()}


def held(**fields: Any) -> Strategy:
    strategy = running_strategy(**fields)
    Strategy.objects.filter(pk=strategy.pk).update(
        position=Strategy.Position.BOUGHT, entry_price=Decimal("100"), stop_trigger_price=Decimal("98")
    )
    strategy.refresh_from_db()
    return strategy


@pytest.mark.django_db
def test_a_target_gets_p5_and_one_stoploss_task_with_reason_target():
    strategy = held(take_profit_price=Decimal("110"))
    arm(strategy.pk, stop="98", target="110")

    ticks_ingest(message=batch((INFY, 110.5, 1.0)))
    ticks_ingest(message=batch((INFY, 111.0, 2.0)))

    assert stoploss_task_calls() == [(strategy.pk, {"reason": "TARGET"})]
    [p5] = events("P5")
    assert p5.strategy_id == strategy.pk and p5.payload["price"] == "110.5"
    assert events("M2") == []


@pytest.mark.django_db
def test_a_crossed_trailed_stop_gets_m2_and_a_task_with_reason_trail():
    strategy = held(stop_loss_trail_percent=Decimal("2"))
    arm(strategy.pk, stop="98", percent="2")

    ticks_ingest(message=batch((INFY, 105.0, 1.0)), trails=TrailFollower())
    ticks_ingest(message=batch((INFY, 102.0, 2.0)), trails=TrailFollower())

    assert stoploss_task_calls() == [(strategy.pk, {"reason": "TRAIL"})]
    [m2] = events("M2")
    assert m2.payload["reason"] == "TRAIL"


@pytest.mark.django_db
def test_a_plain_stop_task_carries_no_reason():
    strategy = held()
    arm(strategy.pk, stop="98")

    ticks_ingest(message=batch((INFY, 97.0, 1.0)))

    assert stoploss_task_calls() == [(strategy.pk, {})]


@pytest.mark.django_db
def test_a_target_whose_task_was_never_sent_is_swept_with_its_reason():
    arm(42, stop="95", target="105")
    ingest(get_redis(), tick(106.0, 1.0))  # taken out of tp:, then the consumer "died"

    swept = stoploss_enqueue_leftovers(older_than=0)

    assert [(t.strategy_id, t.reason) for t in swept] == [(42, "TARGET")]
    assert stoploss_task_calls() == [(42, {"reason": "TARGET"})]


def record_and_moves() -> tuple[list[list[Any]], list[list[Any]]]:
    """The args of the record tasks queued, oldest first, and the protective moves they carry
    (the record sends the move once the raised stop is stored)."""
    tasks = queued_tasks(CeleryQueue.ORDERS)
    records = [args for name, args in tasks if name == TaskName.RECORD_TRAIL.value]
    assert len(records) == len(tasks)
    moves = [[args[0], args[2]] for args in records if args[3]]
    return [args[:3] for args in records], moves


def test_a_raised_stop_sends_its_record_and_the_protective_orders_move():
    arm(1, stop="98", percent="2")

    ticks_ingest(message=batch((INFY, 105.0, 1.0)), trails=TrailFollower())

    assert record_and_moves() == ([[1, "105.0", "102.9"]], [[1, "102.9"]])


def test_raised_stops_are_followed_at_most_once_per_interval_and_only_after_enough_of_a_move(settings):
    settings.TRAIL_MODIFY_MIN_SECONDS, settings.TRAIL_MODIFY_MIN_BPS = 3.0, 20.0
    follower = TrailFollower()

    def move(stop: float, now: float) -> list[TrailMove]:
        return follower.follow([TrailMove(1, INFY, round(stop / 0.98, 2), stop)], now=now)

    first = move(100.00, now=0.0)
    too_soon = move(101.00, now=1.0)  # 100 bps, but within the interval: waits
    waited = follower.follow([], now=3.5)  # its time came with no new tick
    too_small = move(101.10, now=7.0)  # 10 bps since the last sent
    enough = move(101.30, now=7.5)  # 30 bps since: due at once, the interval passed

    assert [m.stop for m in first] == [100.0] and too_soon == [] and [m.stop for m in waited] == [101.0]
    assert too_small == [] and [m.stop for m in enough] == [101.3]
    records, moves = record_and_moves()
    assert [args[2] for args in records] == ["100.0", "101.0", "101.3"]
    assert [args[1] for args in moves] == ["100.0", "101.0", "101.3"]


def test_the_protective_order_is_moved_at_most_trail_modify_max_times(settings):
    settings.TRAIL_MODIFY_MIN_SECONDS, settings.TRAIL_MODIFY_MIN_BPS, settings.TRAIL_MODIFY_MAX = 0.0, 0.0, 2
    follower = TrailFollower()

    for n in range(4):
        follower.follow([TrailMove(1, INFY, 110.0 + n, 99.0 + n)], now=float(n))

    records, moves = record_and_moves()
    assert len(records) == 4  # the record goes on: a rebuild arms the newest stop
    assert moves == [[1, "99.0"], [1, "100.0"]]


def test_a_fired_exit_forgets_its_pending_trail():
    follower = TrailFollower()
    follower.follow([TrailMove(1, INFY, 105.0, 102.9)], now=0.0)
    follower.follow([TrailMove(1, INFY, 110.0, 107.8)], now=1.0)  # pending: within the interval

    follower.forget([1])

    assert follower.follow([], now=10.0) == []
    assert len(record_and_moves()[0]) == 1
