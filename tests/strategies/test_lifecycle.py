"""Lifecycle services (U5..U7, S1..S5): compare-and-set transitions, runtime state in
Redis, and the schedule set up after commit."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import close_old_connections
from django.utils import timezone

from algotrader import redis_keys
from algotrader.exceptions import ValidationFailed
from algotrader.redis_client import get_redis
from execution.services import locks
from monitoring.models import EventLog
from strategies import services
from strategies.exceptions import InvalidTransition, StrategyNotRunning
from strategies.models import Strategy
from strategies.stoploss_index import stoploss_arm, stoploss_armed
from tests.factories import BrokerAccountFactory

IST = ZoneInfo("Asia/Kolkata")
MONDAY_10AM = datetime(2026, 11, 23, 10, 0, tzinfo=IST)


@pytest.fixture
def travel():
    with time_machine.travel(MONDAY_10AM, tick=True) as traveller:
        yield traveller


def create(account, **overrides) -> Strategy:
    fields = {
        "user": account.owner,
        "broker_account_id": account.pk,
        "exchange": "NSE",
        "symbol": "INFY",
        "quantity": 10,
        "buy_at": time(10, 30),
        "sell_at": time(15, 0),
        "stop_loss_percent": 2,
    }
    fields.update(overrides)
    return services.strategy_create(**fields)


def codes(strategy: Strategy) -> list[str]:
    return list(EventLog.objects.filter(strategy=strategy).order_by("id").values_list("code", flat=True))


@pytest.mark.django_db
def test_start_loads_runtime_state_and_records_s1_s2_s3(travel):
    strategy = create(BrokerAccountFactory())

    started = services.strategy_start(user=strategy.owner, strategy_id=strategy.pk)

    assert (started.status, started.position, started.version) == ("RUNNING", "NONE", 1)
    runtime = get_redis().hgetall(redis_keys.strategy(strategy.pk))
    assert runtime["status"] == "RUNNING"
    assert runtime["position"] == "NONE"
    assert runtime["symbol"] == "INFY"
    assert get_redis().sismember(redis_keys.symbol_strategies("NSE:INFY"), str(strategy.pk))
    assert not get_redis().exists(redis_keys.lock_state(strategy.pk))
    assert codes(strategy) == ["U4", "U6", "S1", "S2", "S3"]


@pytest.mark.django_db
def test_a_running_strategy_cannot_start_again(travel):
    strategy = create(BrokerAccountFactory())
    services.strategy_start(user=strategy.owner, strategy_id=strategy.pk)

    with pytest.raises(InvalidTransition):
        services.strategy_start(user=strategy.owner, strategy_id=strategy.pk)


@pytest.mark.django_db
def test_a_strategy_whose_buy_time_passed_cannot_start(travel):
    strategy = create(BrokerAccountFactory())
    travel.move_to(MONDAY_10AM + timedelta(hours=1))

    with pytest.raises(ValidationFailed) as refused:
        services.strategy_start(user=strategy.owner, strategy_id=strategy.pk)

    assert "buy_at" in refused.value.fields
    assert Strategy.objects.get(pk=strategy.pk).status == "CREATED"


@pytest.mark.django_db(transaction=True)
def test_concurrent_starts_give_exactly_one_running_strategy(travel):
    strategy = create(BrokerAccountFactory())
    barrier = threading.Barrier(8)

    def start(_: int) -> str:
        barrier.wait()
        try:
            services.strategy_start(user=strategy.owner, strategy_id=strategy.pk)
            return "started"
        except InvalidTransition:
            return "refused"
        finally:
            close_old_connections()

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(start, range(8)))

    assert outcomes.count("started") == 1
    assert outcomes.count("refused") == 7
    assert EventLog.objects.filter(strategy=strategy, code="S1").count() == 1


@pytest.mark.django_db
def test_stop_clears_runtime_state_and_records_s4(travel):
    strategy = create(BrokerAccountFactory())
    services.strategy_start(user=strategy.owner, strategy_id=strategy.pk)

    stopped = services.strategy_stop(user=strategy.owner, strategy_id=strategy.pk)

    assert stopped.status == "STOPPED"
    assert not get_redis().exists(redis_keys.strategy(strategy.pk))
    assert not get_redis().sismember(redis_keys.symbol_strategies("NSE:INFY"), str(strategy.pk))
    assert codes(strategy)[-3:] == ["U7", "S4", "L1"]
    with pytest.raises(StrategyNotRunning):
        services.strategy_stop(user=strategy.owner, strategy_id=strategy.pk)


@pytest.mark.django_db
def test_a_stopped_strategy_can_start_again_while_its_buy_is_ahead(travel):
    strategy = create(BrokerAccountFactory())
    services.strategy_start(user=strategy.owner, strategy_id=strategy.pk)
    services.strategy_stop(user=strategy.owner, strategy_id=strategy.pk)

    restarted = services.strategy_start(user=strategy.owner, strategy_id=strategy.pk)

    assert restarted.status == "RUNNING"


@pytest.mark.django_db
def test_updating_a_running_strategy_moves_its_fire_times_and_refreshes_redis(travel):
    strategy = create(BrokerAccountFactory())
    services.strategy_start(user=strategy.owner, strategy_id=strategy.pk)

    updated = services.strategy_update(user=strategy.owner, strategy_id=strategy.pk, buy_at=time(11, 0), quantity=4)

    assert updated.buy_fire_at == datetime(2026, 11, 23, 11, 0, tzinfo=IST)
    assert get_redis().hget(redis_keys.strategy(strategy.pk), "quantity") == "4"
    assert "U5" in codes(strategy)
    assert "T3" in codes(strategy)


@pytest.mark.django_db
def test_quantity_and_buy_time_are_frozen_once_the_buy_was_sent(travel):
    strategy = create(BrokerAccountFactory())
    services.strategy_start(user=strategy.owner, strategy_id=strategy.pk)
    Strategy.objects.filter(pk=strategy.pk).update(buy_fired_at=timezone.now(), position="BOUGHT")

    with pytest.raises(ValidationFailed) as refused:
        services.strategy_update(user=strategy.owner, strategy_id=strategy.pk, quantity=1, buy_at=time(11, 0))

    assert set(refused.value.fields) == {"quantity", "buy_at"}


@pytest.mark.django_db
def test_a_stop_loss_change_on_an_open_position_refixes_the_trigger(travel):
    strategy = create(BrokerAccountFactory())
    services.strategy_start(user=strategy.owner, strategy_id=strategy.pk)
    Strategy.objects.filter(pk=strategy.pk).update(
        buy_fired_at=timezone.now(), position="BOUGHT", entry_price="1500.00", stop_trigger_price="1470.00"
    )

    updated = services.strategy_update(user=strategy.owner, strategy_id=strategy.pk, stop_loss_percent=5)

    assert str(updated.stop_trigger_price) == "1425.0000"
    assert updated.stop_loss_price is None


@pytest.mark.django_db
def test_a_stop_loss_change_moves_the_armed_stop_and_leaves_a_held_lock(travel):
    strategy = create(BrokerAccountFactory())
    services.strategy_start(user=strategy.owner, strategy_id=strategy.pk)
    Strategy.objects.filter(pk=strategy.pk).update(
        buy_fired_at=timezone.now(), position="BOUGHT", entry_price="1500.00", stop_trigger_price="1470.00"
    )
    stoploss_arm(strategy_id=strategy.pk, instrument="NSE:INFY", trigger_price=Decimal("1470.00"))
    lock = locks.lock_acquire(strategy_id=strategy.pk)  # a worker executing the strategy right now

    services.strategy_update(user=strategy.owner, strategy_id=strategy.pk, stop_loss_price=Decimal("1490.00"))

    assert stoploss_armed(instrument="NSE:INFY") == {strategy.pk: Decimal("1490.0")}
    assert lock is not None and get_redis().get(redis_keys.lock_state(strategy.pk)) == lock.token


@pytest.mark.django_db
def test_a_stop_loss_change_after_the_stop_fired_does_not_arm_it_again(travel):
    strategy = create(BrokerAccountFactory())
    services.strategy_start(user=strategy.owner, strategy_id=strategy.pk)
    Strategy.objects.filter(pk=strategy.pk).update(
        buy_fired_at=timezone.now(), position="BOUGHT", entry_price="1500.00", stop_trigger_price="1470.00"
    )  # armed, then taken out by a crossing tick: nothing in sl:NSE:INFY

    services.strategy_update(user=strategy.owner, strategy_id=strategy.pk, stop_loss_price=Decimal("1490.00"))

    assert stoploss_armed(instrument="NSE:INFY") == {}


@pytest.mark.django_db
def test_a_running_strategy_cannot_be_deleted(travel):
    strategy = create(BrokerAccountFactory())
    services.strategy_start(user=strategy.owner, strategy_id=strategy.pk)

    with pytest.raises(InvalidTransition):
        services.strategy_delete(user=strategy.owner, strategy_id=strategy.pk)


@pytest.mark.django_db
def test_the_final_exit_happens_once(travel):
    strategy = create(BrokerAccountFactory())
    services.strategy_start(user=strategy.owner, strategy_id=strategy.pk)

    first = services.strategy_exit(
        strategy_id=strategy.pk, reason=Strategy.ExitReason.SELL, position=Strategy.Position.SOLD, at=timezone.now()
    )
    second = services.strategy_exit(
        strategy_id=strategy.pk,
        reason=Strategy.ExitReason.STOPLOSS,
        position=Strategy.Position.EXITED_BY_SL,
        at=timezone.now(),
    )

    strategy.refresh_from_db()
    assert (first, second) == (True, False)
    assert (strategy.status, strategy.position, strategy.exit_reason) == ("EXITED", "SOLD", "SELL")
    assert codes(strategy).count("S5") == 1
    assert not get_redis().exists(redis_keys.strategy(strategy.pk))
    with pytest.raises(InvalidTransition):
        services.strategy_update(user=strategy.owner, strategy_id=strategy.pk, quantity=3)


def test_a_percentage_stop_is_fixed_from_the_fill_price():
    from decimal import Decimal

    assert services.stop_trigger_price(
        entry_price=Decimal("1500.00"), stop_loss_price=None, stop_loss_percent=Decimal("2.5")
    ) == Decimal("1462.50")
    assert services.stop_trigger_price(
        entry_price=Decimal("1500.00"), stop_loss_price=Decimal("1400"), stop_loss_percent=None
    ) == Decimal("1400")
