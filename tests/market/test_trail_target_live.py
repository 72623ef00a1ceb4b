"""A trailing stop and a target over the Kite simulator's real ticker, end to end: the listener
and the tick consumer as the Procfile runs them, a stop-loss and an orders worker. The exit of
each goes out on the first frame after the price crosses (one tick interval, 0.1 s), with its
reason, and the simulator's order book holds one SELL per position."""

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from brokers.kite_sim import KiteSimulator, SimAccount
from execution.models import Order
from strategies.exit_index import exits_arm_held
from strategies.models import Strategy
from strategies.stoploss_index import stoploss_arm, stoploss_armed
from tests.execution.workers import Worker, running_worker
from tests.market.helpers import events, running_strategy
from tests.market.test_listener_live import INFY, after_ticks, kite_account, last_price, start_stack
from tests.waiting import wait_until

__all__ = ["start_stack"]

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WORKER_ENV = {
    "ORDER_FOLLOW_SECONDS": "20",
    "ORDER_UNKNOWN_GRACE_SECONDS": "0.5",
    "ORDER_RETRY_BACKOFF_MAX_SECONDS": "0.1",
}
# No protective order rests in these tests: the consumer records a raised stop (P4) but sends no move.
STACK_ENV = {"TRAIL_MODIFY_MAX": "0", "TRAIL_MODIFY_MIN_SECONDS": "0"}


@pytest.fixture
def exits_worker(kite_sim: KiteSimulator, tmp_path: Path) -> Iterator[Worker]:
    env = {**WORKER_ENV, **STACK_ENV, "KITE_API_ROOT": kite_sim.api_root, "KITE_WS_ROOT": kite_sim.ws_root}
    with running_worker("stoploss,orders", tmp_path / "exits.log", env, concurrency=2) as worker:
        yield worker


def held(sim_account: SimAccount, entry: Decimal, **exits: Any) -> Strategy:
    """A position held since a fill at ``entry``, its stop 20 below and its exits armed as a fill arms them."""
    strategy = running_strategy(account=kite_account(sim_account), **exits)
    Strategy.objects.filter(pk=strategy.pk).update(
        stop_loss_price=entry - 20,
        position=Strategy.Position.BOUGHT,
        entry_price=entry,
        stop_trigger_price=entry - 20,
        trail_high_price=entry if "stop_loss_trail_percent" in exits else None,
        target_price=exits.get("take_profit_price"),
    )
    strategy.refresh_from_db()
    stoploss_arm(strategy_id=strategy.pk, instrument=INFY, trigger_price=entry - 20)
    exits_arm_held(strategy)
    return strategy


def sells(kite_sim: KiteSimulator, sim_account: SimAccount) -> list[tuple[str, str]]:
    return [(o["tag"], o["status"]) for o in kite_sim.orders(sim_account.api_key) if o["transaction_type"] == "SELL"]


def final(strategy: Strategy) -> tuple[str, str, str | None]:
    strategy.refresh_from_db()
    return strategy.status, strategy.position, strategy.exit_reason


def test_a_target_reached_at_the_simulator_exits_on_the_first_frame_after(
    start_stack, kite_sim, sim_account, exits_worker
):
    entry = kite_sim.price("NSE", "INFY")
    strategy = held(sim_account, entry, take_profit_price=entry + 5)
    stack = start_stack(MARKET_FEED_ACCOUNT_ID=str(strategy.broker_account_id), **STACK_ENV)
    wait_until(lambda: last_price(INFY), message=stack.logs)
    after_ticks(3, stack)  # ticks below the target: nothing happens
    assert events("P5") == [] and sells(kite_sim, sim_account) == []

    crossed_at = time.time()
    kite_sim.set_price("NSE", "INFY", entry + Decimal("5.5"))

    wait_until(lambda: final(strategy) == ("EXITED", "SOLD", "TARGET"), message=exits_worker.text)
    [p5] = events("P5")
    assert Decimal(p5.payload["price"]) == entry + Decimal("5.5")
    assert p5.payload["frame_received_at"] - crossed_at < 0.3, p5.payload  # the first frame after the move
    [exit_order] = Order.objects.filter(strategy=strategy)
    assert exit_order.reason == Order.Reason.TARGET
    assert sells(kite_sim, sim_account) == [(exit_order.tag, "COMPLETE")]
    assert events("M2") == []


def test_a_trailing_stop_follows_the_price_up_and_exits_on_the_first_frame_below_it(
    start_stack, kite_sim, sim_account, exits_worker
):
    entry = kite_sim.price("NSE", "INFY")
    strategy = held(sim_account, entry, stop_loss_trail_percent=Decimal("1"))
    stack = start_stack(MARKET_FEED_ACCOUNT_ID=str(strategy.broker_account_id), **STACK_ENV)
    wait_until(lambda: last_price(INFY), message=stack.logs)

    high = entry + 30
    kite_sim.set_price("NSE", "INFY", high)
    raised = (high * Decimal("0.99")).quantize(Decimal("0.01"), rounding="ROUND_DOWN")
    wait_until(lambda: stoploss_armed(instrument=INFY) == {strategy.pk: raised}, message=stack.logs)
    wait_until(lambda: events("P4"), message=exits_worker.text)  # recorded by record_trail_task
    kite_sim.set_price("NSE", "INFY", high - 2)  # lower, still above the stop: it stays
    after_ticks(3, stack)
    assert stoploss_armed(instrument=INFY) == {strategy.pk: raised} and sells(kite_sim, sim_account) == []

    cross = (raised - Decimal("0.5")).quantize(Decimal("0.1"), rounding="ROUND_DOWN")  # on the simulator's grid
    crossed_at = time.time()
    kite_sim.set_price("NSE", "INFY", cross)

    wait_until(lambda: final(strategy) == ("EXITED", "EXITED_BY_SL", "TRAIL"), message=exits_worker.text)
    [m2] = events("M2")
    assert m2.payload["reason"] == "TRAIL" and Decimal(m2.payload["price"]) == cross
    assert m2.payload["frame_received_at"] - crossed_at < 0.3, m2.payload
    [exit_order] = Order.objects.filter(strategy=strategy)
    assert exit_order.reason == Order.Reason.TRAIL
    assert sells(kite_sim, sim_account) == [(exit_order.tag, "COMPLETE")]
    [p4] = events("P4")
    assert Decimal(p4.payload["stop_price"]) == raised
