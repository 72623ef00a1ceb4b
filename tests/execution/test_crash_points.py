"""A worker SIGKILLed at every point of an execution (before and after each event, state
move, order status move and broker call) loses no order and duplicates none: after
recovery (its lock expires, interrupted intents are settled, then the stop triggers and
the SELL fires as they would) the broker's book is flat with at most one BUY and one
exit, and the strategy has ended. Each run is a forked child process killed for real."""

import os
import signal
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from django.db import connection, connections

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from brokers.adapters.paper import PaperAdapter
from execution.models import Order
from execution.recovery.settlement import orders_settle_interrupted
from execution.services import claims
from execution.services import orders as order_services
from execution.services.entries import strategy_buy_execute
from execution.services.exits import strategy_sell_execute, strategy_stoploss_execute
from monitoring import services as monitoring_services
from strategies import services as strategy_services
from tests.execution.helpers import paper_book
from tests.soak import kill_points

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.soak]

# Kill points a suite run takes of each lifecycle's sweep (all of them under `make soak`).
SUITE_POINTS = 14

HOOKED: list[tuple[Any, str]] = [
    (monitoring_services, "emit_many"),
    # The execution services record some events together (emit_many), by their own reference.
    (claims, "emit_many"),
    (order_services, "emit_many"),
    (strategy_services, "strategy_transition"),
    (order_services, "_move"),
    (PaperAdapter, "place_order"),
    (PaperAdapter, "get_order"),
    (PaperAdapter, "orders_by_tag"),
]


def _lifecycle_sell(strategy_id: int) -> None:
    strategy_buy_execute(strategy_id=strategy_id)
    strategy_sell_execute(strategy_id=strategy_id, reason="SELL")


def _lifecycle_stoploss(strategy_id: int) -> None:
    strategy_buy_execute(strategy_id=strategy_id)
    strategy_stoploss_execute(strategy_id=strategy_id)


LIFECYCLES: dict[str, Callable[[int], None]] = {"sell": _lifecycle_sell, "stoploss": _lifecycle_stoploss}


def _hook_points(
    monkeypatch: pytest.MonkeyPatch, at: int | None, counter: list[int], names: list[str] | None = None
) -> None:
    """Count every hooked call twice (before and after it); SIGKILL this process at ``at``."""

    def point(label: str) -> None:
        counter[0] += 1
        if names is not None:
            names.append(label)
        if at is not None and counter[0] == at:
            os.kill(os.getpid(), signal.SIGKILL)

    for owner, name in HOOKED:
        original = getattr(owner, name)

        def wrapper(*args: Any, __original: Any = original, __name: str = name, **kwargs: Any) -> Any:
            point(f"before {__name}")
            result = __original(*args, **kwargs)
            point(f"after {__name}")
            return result

        monkeypatch.setattr(owner, name, wrapper)


def _run_in_child(run: Callable[[], None]) -> int:
    connections.close_all()  # the child opens its own connection
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            run()
        except BaseException:
            code = 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return status


def _recover(strategy_id: int, lifecycle: str) -> None:
    """What follows a killed worker: its lock expires, the settlement runs (its task is
    redelivered only after the broker's visibility timeout: not counted on), the stop
    triggers on the next tick if armed, and the SELL fires at its time."""
    get_redis().delete(redis_keys.lock_state(strategy_id))
    orders_settle_interrupted(older_than=0)
    crossed = lifecycle == "stoploss"  # the price is at or below the stop in this lifecycle only
    if crossed and get_redis().zrem(redis_keys.stop_losses("NSE:INFY"), str(strategy_id)):
        strategy_stoploss_execute(strategy_id=strategy_id)
    strategy_sell_execute(strategy_id=strategy_id, reason="SELL")
    orders_settle_interrupted(older_than=0)


def _points_of(lifecycle: str, make_strategy: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    counter, names = [0], list[str]()
    with monkeypatch.context() as patch:
        _hook_points(patch, None, counter, names)
        strategy = make_strategy()
        LIFECYCLES[lifecycle](strategy.pk)
    return names


@pytest.mark.parametrize("lifecycle", sorted(LIFECYCLES))
def test_a_worker_killed_at_any_point_loses_and_duplicates_nothing(lifecycle, make_strategy, monkeypatch):
    points = _points_of(lifecycle, make_strategy, monkeypatch)
    assert len(points) >= 45  # every write and broker call of both executions (fewer since they were merged)
    run = LIFECYCLES[lifecycle]
    print(f"{lifecycle}: {len(points)} kill points")  # noqa: T201
    for at in kill_points(len(points), suite=SUITE_POINTS):
        where = (at, points[at - 1])
        strategy = make_strategy()
        counter = [0]
        with monkeypatch.context() as patch:
            _hook_points(patch, at, counter)
            status = _run_in_child(partial(run, strategy.pk))
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (where, status)

        _recover(strategy.pk, lifecycle)

        book = [(o.side, o.status) for o in paper_book(strategy) if o.status == "COMPLETE"]
        strategy.refresh_from_db()
        live = list(Order.objects.filter(strategy=strategy, status__in=Order.LIVE))
        assert book in ([], [("BUY", "COMPLETE"), ("SELL", "COMPLETE")]), (
            where,
            book,
            list(Order.objects.filter(strategy=strategy).values_list("reason", "status")),
        )
        assert live == [], (where, live)
        assert strategy.status == "EXITED", (where, strategy.status, strategy.position)
        expected = "NONE" if not book else ("SOLD" if lifecycle == "sell" else "EXITED_BY_SL")
        assert strategy.position == expected, (where, strategy.position, strategy.exit_reason)
        # A fresh account each time would be cleaner; one per strategy is what make_strategy gives.
    connection.close()
