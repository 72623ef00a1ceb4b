"""Point 3 of the protective stop, over real processes and the Kite simulator: every worker, the
listener and Redis are down while the price falls through the stop; the broker's protective order
exits the position. On restart recovery finds that order filled by its tag, ends the strategy
(S5, STOPLOSS) with the whole timeline, and places nothing more."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from algotrader.redis_client import get_redis
from execution.models import Order
from monitoring.models import EventLog
from strategies import runtime, slots
from strategies.models import Strategy
from tests.execution.recovery.test_recovery_live import (  # the live stack, shared
    Session,
    explained,
    kite_sim,
    pytestmark,
    sim_account,
    stack,
    start,
)
from tests.strategies.factories_scheduling import strategy_create
from tests.waiting import wait_until

__all__ = ["kite_sim", "pytestmark", "sim_account", "stack"]


def test_the_brokers_stop_exits_during_a_total_outage_and_recovery_only_records_it(stack, kite_sim, sim_account):
    session = Session(kite_sim, sim_account)
    start(stack, session)
    strategy = strategy_create(
        buy_fire_at=(timezone.now() + timedelta(seconds=3)).replace(microsecond=0),
        sell_fire_at=timezone.now() + timedelta(hours=2),
        account=session.account,
    )
    session.held = [strategy]
    runtime.runtime_load(strategy)
    slots.schedule_strategy(strategy)

    def resting() -> bool:
        return Order.objects.filter(strategy=strategy, protective=True, status=Order.Status.PLACED).exists()

    wait_until(resting, timeout=60, message=explained("the protective stop resting (P1)", stack, session))
    stack.kill_all()
    get_redis().flushdb()
    session.cross_the_stops()  # nothing of ours runs: only the broker's order can exit
    stop = Order.objects.get(strategy=strategy, protective=True)

    def filled_at_kite() -> bool:
        return any(o["tag"] == stop.tag and o["status"] == "COMPLETE" for o in session.book())

    wait_until(filled_at_kite, timeout=30, message=lambda: f"the broker's stop fills: {session.book()}")
    start(stack, session)

    def ended() -> bool:
        strategy.refresh_from_db()
        return strategy.status == Strategy.Status.EXITED

    wait_until(ended, timeout=60, message=explained("recovery ends the strategy", stack, session))
    strategy.refresh_from_db()
    assert (strategy.position, strategy.exit_reason) == ("EXITED_BY_SL", "STOPLOSS")
    assert [(o["transaction_type"], o["status"]) for o in session.book()] == [("BUY", "COMPLETE"), ("SELL", "COMPLETE")]
    assert list(Order.objects.filter(strategy=strategy).order_by("id").values_list("side", "reason", "status")) == [
        ("BUY", "BUY", "COMPLETE"),
        ("SELL", "STOPLOSS", "COMPLETE"),
    ]
    timeline = list(EventLog.objects.filter(strategy=strategy).order_by("id").values_list("code", flat=True))
    assert timeline.index("E1") < timeline.index("P1") < timeline.index("P3") < timeline.index("S5")
    assert timeline.count("S5") == 1
