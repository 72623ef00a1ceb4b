"""The listener (``run_market_listener``) and the tick consumer (``runworker ticks``) as
real processes on the test database, fed by the Kite simulator's real ticker or the
paper broker's simulated market: stops cross within one tick and only once, strategies
starting and stopping move the subscriptions live, a killed or silent feed recovers by
itself with its events recorded."""

import os
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.db import connection

from algotrader import redis_keys
from algotrader.processes import ProcessGroup, manage
from algotrader.redis_client import get_redis
from brokers.instruments import find_instrument
from brokers.kite_sim import KiteSimulator, SimAccount
from brokers.models import BrokerAccount
from market.selectors import feed_health
from strategies import runtime
from strategies.stoploss_index import stoploss_arm
from tests.factories import BrokerAccountFactory
from tests.market.helpers import declare_queues, events, running_strategy, stoploss_tasks
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
INFY, TCS = "NSE:INFY", "NSE:TCS"

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def start_stack(tmp_path: Path, kite_sim: KiteSimulator) -> Iterator[Callable[..., ProcessGroup]]:
    stacks: list[ProcessGroup] = []
    parts = urlsplit(os.environ["DATABASE_URL"])
    database_url = urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))

    def start(**settings: str) -> ProcessGroup:
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "PYTHONUNBUFFERED": "1",
            "KITE_API_ROOT": kite_sim.api_root,
            "KITE_WS_ROOT": kite_sim.ws_root,
            "KITE_SIMULATED": "true",
            "MARKET_RECONCILE_SECONDS": "2",
            "PAPER_TICK_INTERVAL": "0.1",
            **settings,
        }
        stack = ProcessGroup(tmp_path, env)
        stacks.append(stack)
        declare_queues()
        stack.start("ticks", manage("runworker", "ticks"))
        stack.start("market", manage("run_market_listener"))
        return stack

    yield start
    for stack in stacks:
        stack.stop_all()


def kite_account(sim_account: SimAccount) -> BrokerAccount:
    return BrokerAccountFactory.create(
        kite=True,
        api_key=sim_account.api_key,
        api_secret=sim_account.api_secret,
        access_token=sim_account.access_token,
        broker_user_id=sim_account.user_id,
    )


def ticks_applied(instrument: str) -> int:
    return int(get_redis().hget(redis_keys.tick_counts(), instrument) or 0)


def after_ticks(count: int, stack: ProcessGroup, instrument: str = INFY) -> None:
    """Until the consumer has applied ``count`` more ticks of ``instrument``: each applied
    tick has been checked against the stops, and what an earlier one fired is recorded."""
    seen = ticks_applied(instrument)
    wait_until(lambda: ticks_applied(instrument) >= seen + count, message=stack.logs)


def last_price(instrument: str) -> str | None:
    price = get_redis().hget(redis_keys.instrument_price(instrument), "price")
    return None if price is None else str(price)


def subscribed_at_simulator(kite_sim: KiteSimulator) -> set[str]:
    return {f"{i.exchange}:{i.symbol}" for i in kite_sim._ticker.subscribed_instruments()}


def test_a_stop_crossed_at_the_simulator_gives_m2_and_one_stoploss_task_within_one_tick(
    start_stack, kite_sim, sim_account
):
    strategy = running_strategy(account=kite_account(sim_account))
    stack = start_stack(MARKET_FEED_ACCOUNT_ID=str(strategy.broker_account_id))
    wait_until(lambda: last_price(INFY), message=stack.logs)
    stop = kite_sim.price("NSE", "INFY") - Decimal(10)
    stoploss_arm(strategy_id=strategy.pk, instrument=INFY, trigger_price=stop)
    after_ticks(3, stack)  # ticks above the stop: nothing happens
    assert stoploss_tasks() == [] and events("M2") == []

    crossed_at = time.time()
    kite_sim.set_price("NSE", "INFY", stop - Decimal("0.5"))
    wait_until(lambda: events("M2"), message=stack.logs)
    after_ticks(10, stack)  # ten more ticks below the stop
    kite_sim.set_price("NSE", "INFY", stop - Decimal(20))
    after_ticks(5, stack)

    [m2] = events("M2")
    assert m2.strategy_id == strategy.pk and m2.user_id == strategy.owner_id
    assert Decimal(m2.payload["price"]) == stop - Decimal("0.5")
    # The first frame after the move (one tick interval, 0.1 s) carried the trigger.
    assert m2.payload["frame_received_at"] - crossed_at < 0.3, m2.payload
    assert stoploss_tasks() == [strategy.pk]
    assert [e.payload["instrument"] for e in events("M1")] == [INFY]
    assert events("B5") and not events("M3")


def test_starting_and_stopping_strategies_moves_subscriptions_without_a_restart(start_stack, kite_sim, sim_account):
    account = kite_account(sim_account)
    infy = running_strategy(account=account)
    stack = start_stack(MARKET_FEED_ACCOUNT_ID=str(account.pk), MARKET_RECONCILE_SECONDS="60")
    wait_until(lambda: last_price(INFY), message=stack.logs)
    listener_pid = stack.processes["market"].pid

    tcs = running_strategy(account=account, symbol="TCS")  # runtime_load publishes the change
    wait_until(lambda: last_price(TCS), timeout=5, message=stack.logs)
    assert subscribed_at_simulator(kite_sim) == {INFY, TCS}

    runtime.runtime_clear(tcs)
    wait_until(lambda: subscribed_at_simulator(kite_sim) == {INFY}, timeout=5, message=stack.logs)
    runtime.runtime_clear(infy)
    wait_until(lambda: subscribed_at_simulator(kite_sim) == set(), timeout=5, message=stack.logs)

    assert stack.processes["market"].pid == listener_pid and stack.processes["market"].poll() is None
    assert stack.log("market").count("market listener started") == 1
    assert stack.terminate("market") == 0, stack.logs()  # SIGTERM: a graceful stop
    assert "market listener stopped" in stack.log("market")


def test_the_reconcile_subscribes_what_was_published_while_nobody_listened(start_stack, kite_sim, sim_account):
    account = kite_account(sim_account)
    running_strategy(account=account)
    stack = start_stack(MARKET_FEED_ACCOUNT_ID=str(account.pk), MARKET_RECONCILE_SECONDS="1")
    wait_until(lambda: last_price(INFY), message=stack.logs)

    get_redis().sadd(redis_keys.symbol_strategies(TCS), 999)  # no publish: only the reconcile sees it

    wait_until(lambda: last_price(TCS), timeout=5, message=stack.logs)


def test_a_dropped_feed_reconnects_by_itself_with_m3_b6_b5_m4(start_stack, kite_sim, sim_account):
    strategy = running_strategy(account=kite_account(sim_account))
    stack = start_stack(MARKET_FEED_ACCOUNT_ID=str(strategy.broker_account_id))
    wait_until(lambda: last_price(INFY), message=stack.logs)
    wait_until(lambda: events("B5"), message=stack.logs)

    kite_sim.set_fault("feed_disconnect")
    wait_until(lambda: events("M4"), message=stack.logs)
    stoploss_arm(strategy_id=strategy.pk, instrument=INFY, trigger_price=kite_sim.price("NSE", "INFY") - 1)
    kite_sim.set_price("NSE", "INFY", kite_sim.price("NSE", "INFY") - 5)
    wait_until(lambda: events("M2"), message=stack.logs)

    [m3], [m4] = events("M3"), events("M4")
    assert events("B6") and len(events("B5")) == 2
    assert m3.id < m4.id and m3.user_id is None and m4.user_id is None
    assert stoploss_tasks() == [strategy.pk]  # the restored stream still triggers, once


def test_a_silent_feed_is_reconnected_and_a_long_gap_raises_l4_once_and_clears_it(start_stack, kite_sim, sim_account):
    strategy = running_strategy(account=kite_account(sim_account))
    stoploss_arm(strategy_id=strategy.pk, instrument=INFY, trigger_price=Decimal(1))
    stack = start_stack(
        MARKET_FEED_ACCOUNT_ID=str(strategy.broker_account_id),
        MARKET_FEED_STALL_SECONDS="1.5",
        MARKET_FEED_STALE_SECONDS="2",
    )
    wait_until(lambda: last_price(INFY), message=stack.logs)
    # Before the fault: the feed healthy with its one armed stop (a loaded machine can stall a
    # frame past MARKET_FEED_STALL_SECONDS on its own, so this is waited for, not sampled once).
    wait_until(
        lambda: (
            (health := feed_health() or {}).get("armed") == 1
            and health == {**health, "healthy": True, "stale": 0, "connected": True}
        ),
        message=stack.logs,
    )

    kite_sim.set_fault("feed_silent", seconds=5)
    wait_until(lambda: events("L4"), timeout=10, message=stack.logs)
    during = feed_health()
    wait_until(lambda: events("M4"), timeout=15, message=stack.logs)
    wait_until(lambda: len(events("L4", user=None)) == 2, timeout=10, message=stack.logs)
    # The owner's copies are recorded after the operators' ones, not with them.
    wait_until(lambda: len(events("L4", strategy=strategy)) == 2, timeout=10, message=stack.logs)

    assert during is not None and during["healthy"] is False and during["stale"] == 1
    opened, cleared = events("L4", user=None)
    assert opened.payload["state"] == "open" and cleared.payload["state"] == "resolved"
    assert opened.payload["instrument"] == INFY
    owner_open, owner_cleared = events("L4", strategy=strategy)
    assert owner_open.user_id == owner_cleared.user_id == strategy.owner_id
    assert owner_cleared.payload["state"] == "resolved"
    assert events("M3") and events("B6") and len(events("M4")) == 1
    assert "no ticks for" in events("B6")[0].message
    wait_until(lambda: (feed_health() or {}).get("healthy"), message=stack.logs)


def test_the_paper_feed_triggers_a_stop_through_the_same_path(start_stack):
    strategy = running_strategy()
    stack = start_stack()  # no MARKET_FEED_ACCOUNT_ID: the paper broker's simulated market
    wait_until(lambda: last_price(INFY), message=stack.logs)
    above = Decimal(str(last_price(INFY))) * 2  # every next tick is below it
    assert find_instrument("NSE", "INFY") is not None

    stoploss_arm(strategy_id=strategy.pk, instrument=INFY, trigger_price=above)
    wait_until(lambda: events("M2"), message=stack.logs)
    after_ticks(5, stack)

    [m2] = events("M2")
    assert m2.strategy_id == strategy.pk
    assert stoploss_tasks() == [strategy.pk]
    assert events("B5")
