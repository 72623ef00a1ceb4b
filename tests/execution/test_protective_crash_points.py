"""The crash-point sweep of ``test_crash_points`` with the protective stop on: a worker SIGKILLed
at every point between the BUY and the exit's settlement (its placement, the conversion's modify,
a cancel included) leaves, after recovery, a flat book with at most one BUY and one SELL filled,
no order live (none resting for a flat position) and the strategy ended."""

import os
import signal
from functools import partial

import pytest
from django.db import connection

from brokers.adapters.paper import PaperAdapter
from execution.models import Order
from tests.execution import test_crash_points as sweep
from tests.execution.helpers import paper_book
from tests.soak import kill_points

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("protective_on"),
    pytest.mark.soak,
]


@pytest.fixture(autouse=True)
def protective_hooks(monkeypatch: pytest.MonkeyPatch, settings) -> None:
    settings.PROTECTIVE_POLL_SECONDS = 0.001  # recovery's settlement looks at a resting stop at once
    monkeypatch.setattr(
        sweep, "HOOKED", [*sweep.HOOKED, (PaperAdapter, "modify_order"), (PaperAdapter, "cancel_order")]
    )


@pytest.mark.parametrize("lifecycle", sorted(sweep.LIFECYCLES))
def test_a_worker_killed_at_any_point_with_a_protective_stop_leaves_one_sell_and_flat(
    lifecycle, make_strategy, monkeypatch
):
    points = sweep._points_of(lifecycle, make_strategy, monkeypatch)
    assert any("modify_order" in point for point in points)  # the conversion is among the kill points
    run = sweep.LIFECYCLES[lifecycle]
    print(f"{lifecycle}: {len(points)} kill points")  # noqa: T201
    for at in kill_points(len(points), suite=sweep.SUITE_POINTS):
        where = (at, points[at - 1])
        strategy = make_strategy()
        counter = [0]
        with monkeypatch.context() as patch:
            sweep._hook_points(patch, at, counter)
            status = sweep._run_in_child(partial(run, strategy.pk))
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (where, status)

        sweep._recover(strategy.pk, lifecycle)

        filled = [(o.side, o.status) for o in paper_book(strategy) if o.status == "COMPLETE"]
        resting = [o for o in paper_book(strategy) if o.status == "OPEN"]
        strategy.refresh_from_db()
        history = list(Order.objects.filter(strategy=strategy).values_list("reason", "status", "order_type"))
        assert filled in ([], [("BUY", "COMPLETE"), ("SELL", "COMPLETE")]), (where, filled, history)
        assert resting == [], (where, resting, history)
        assert list(Order.objects.filter(strategy=strategy, status__in=Order.LIVE)) == [], (where, history)
        assert strategy.status == "EXITED", (where, strategy.status, strategy.position, history)
    connection.close()
