"""The race the protective stop exists for, judged by the Kite simulator's order book: on the same
tick the tick stop-loss fires, the SELL time fires and the broker's own trigger fires. Exactly one
SELL fills each round and no position goes short, however the three interleave."""

import random
import time
from decimal import Decimal
from functools import partial

import pytest

from brokers.kite_sim import KiteSimulator, SimAccount
from execution.recovery.settlement import orders_settle_interrupted
from execution.services import strategy_buy_execute, strategy_sell_execute, strategy_stoploss_execute
from strategies.models import Strategy
from tests.execution.helpers import orders, together
from tests.soak import SOAK
from tests.waiting import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("protective_on"), pytest.mark.soak]

# `make soak` runs the full 200 rounds however long they take; the suite runs as many as fit in
# its budget, on a shared machine.
ROUNDS = 200
BUDGET_SECONDS = 3600.0 if SOAK else 20.0
MIN_ROUNDS = ROUNDS if SOAK else 8


def _price_falls(kite_sim: KiteSimulator, price: Decimal) -> None:
    # Kite's matching engine triggers within milliseconds: a later fall lets our exits win some rounds.
    time.sleep(random.uniform(0, 0.2))
    kite_sim.set_price("NSE", "INFY", price)


def _fills(kite_sim: KiteSimulator, sim_account: SimAccount, tags: set[str]) -> tuple[int, int, int]:
    """(bought, sold, SELL orders that filled anything) for this round's tags, as Kite's book says."""
    book = [o for o in kite_sim.orders(sim_account.api_key) if o["tag"] in tags]
    bought = sum(int(o["filled_quantity"]) for o in book if o["transaction_type"] == "BUY")
    sells = [int(o["filled_quantity"]) for o in book if o["transaction_type"] == "SELL"]
    return bought, sum(sells), sum(1 for filled in sells if filled > 0)


def test_tick_stop_sell_time_and_the_brokers_trigger_on_one_tick_fill_exactly_one_sell(
    make_strategy, kite_account, kite_sim, sim_account
):
    started = time.monotonic()
    exit_reasons: dict[str, int] = {}
    rounds = 0
    while rounds < ROUNDS and time.monotonic() - started < BUDGET_SECONDS:
        kite_sim.set_price("NSE", "INFY", Decimal("1540.00"))
        strategy = make_strategy(account=kite_account)
        strategy_buy_execute(strategy_id=strategy.pk)
        strategy.refresh_from_db()
        assert strategy.position == "BOUGHT" and strategy.stop_trigger_price is not None
        falls_through = strategy.stop_trigger_price * Decimal("0.97")

        together(
            [
                partial(_price_falls, kite_sim, falls_through),
                partial(strategy_stoploss_execute, strategy_id=strategy.pk),
                partial(strategy_sell_execute, strategy_id=strategy.pk, reason="SELL"),
            ],
            jitter=0.03,
        )

        def ended(strategy: Strategy = strategy) -> bool:
            strategy.refresh_from_db()
            if strategy.status != "EXITED":
                orders_settle_interrupted(older_than=0)
            return strategy.status == "EXITED"

        wait_until(ended, timeout=20)
        tags = {o.tag for o in orders(strategy) if o.tag}
        bought, sold, filled_sells = _fills(kite_sim, sim_account, tags)
        assert (filled_sells, sold) == (1, bought), kite_sim.orders(sim_account.api_key)[-4:]
        assert strategy.exit_reason in ("STOPLOSS", "SELL")
        [sell] = [o for o in orders(strategy) if o.side == "SELL" and o.filled_quantity]
        # Who won: the broker's trigger (the stop order filled as it rested) or an exit converting it.
        won = "broker trigger" if sell.order_type != "MARKET" else f"converted by {sell.reason}"
        exit_reasons[won] = exit_reasons.get(won, 0) + 1
        rounds += 1
    assert rounds >= MIN_ROUNDS
    print(f"{rounds} rounds in {time.monotonic() - started:.0f} s: exits {exit_reasons}")  # noqa: T201
