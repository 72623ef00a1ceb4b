"""The BUY's hand-off: once the paper broker accepts the BUY, ``follow_order_task`` follows it
with the strategy's lock, one look per run, sending itself again while the fill is not due,
so no worker thread waits for the broker's fill."""

import time
from collections.abc import Iterator
from typing import Any

import pytest

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from execution.models import Order
from execution.services import exits, follow, strategy_buy_execute
from execution.tasks import execute_buy_task, follow_order_task
from strategies.models import Strategy
from tests.execution.helpers import codes, orders, paper_book
from tests.execution.workers import Worker, running_worker, wait_idle
from tests.strategies.scheduling_helpers import declare_queues
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db

Sent = list[dict[str, Any]]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    """The follow tasks the BUY and the follow itself send, kept here (with when) instead."""
    kept: Sent = []

    def keep(name: Any, *, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None, **options: Any) -> None:
        kept.append({"args": args, "kwargs": kwargs or {}, "at": time.time(), "countdown": options.get("countdown", 0)})

    monkeypatch.setattr(exits, "task_send", keep)
    monkeypatch.setattr(follow, "task_send", keep)
    return kept


def run_due(task: dict[str, Any]) -> None:
    """Run a kept follow task once its countdown has passed, as the worker would."""
    due = task["at"] + task["countdown"]
    wait_until(lambda: time.time() >= due, timeout=10, interval=0.01)
    follow_order_task.apply(args=task["args"], kwargs=task["kwargs"]).get()


def bought_by_hand_off(make_strategy: Any, sent: Sent) -> tuple[Strategy, Order]:
    strategy = make_strategy()
    placed = strategy_buy_execute(strategy_id=strategy.pk, hand_off=True)
    assert placed is not None and placed.status == Order.Status.PENDING
    assert len(sent) == 1
    return strategy, placed


def test_a_follow_whose_fill_is_not_due_sends_itself_for_then_and_returns(make_strategy, sent, settings):
    settings.PAPER_LATENCY_MS = 400
    strategy, placed = bought_by_hand_off(make_strategy, sent)

    began = time.monotonic()
    run_due(sent[0])
    took = time.monotonic() - began

    placed.refresh_from_db()
    assert placed.status == Order.Status.PLACED  # the acceptance recorded, the fill not yet
    assert took < 0.4  # it did not wait for the fill
    assert len(sent) == 2
    later = sent[1]
    assert 0 < later["countdown"] <= 0.4  # the first look when the paper fill is due
    assert later["kwargs"]["strategy_id"] == strategy.pk
    assert get_redis().get(redis_keys.lock_state(strategy.pk)) == later["args"][1]  # the lock goes with it


def test_the_follow_task_run_twice_has_one_effect(make_strategy, sent, settings):
    settings.PAPER_LATENCY_MS = 300
    strategy, _ = bought_by_hand_off(make_strategy, sent)
    handed = sent[0]

    run_due(handed)
    run_due(handed)  # a redelivery: two chains of looks
    ran = 1
    while ran < len(sent):  # both chains run to their end
        run_due(sent[ran])
        ran += 1

    strategy.refresh_from_db()
    assert (strategy.status, strategy.position) == ("RUNNING", "BOUGHT")
    assert [(o.reason, o.status) for o in orders(strategy)] == [("BUY", "COMPLETE")]
    assert [(o.side, o.status) for o in paper_book(strategy)] == [("BUY", "COMPLETE")]
    timeline = codes(strategy)
    assert timeline.count("L1") == 1 and timeline.count("B3") == 1 and timeline.count("E5") == 1
    assert not get_redis().exists(redis_keys.lock_state(strategy.pk))


def test_a_buy_not_filled_within_the_follow_time_has_its_rest_cancelled(make_strategy, sent, settings):
    settings.PAPER_LATENCY_MS = 60_000
    settings.ORDER_FOLLOW_SECONDS = 0.5
    strategy, _ = bought_by_hand_off(make_strategy, sent)

    ran = 0
    while ran < len(sent):
        run_due(sent[ran])
        ran += 1

    strategy.refresh_from_db()
    assert [(o.reason, o.status) for o in orders(strategy)] == [("BUY", "CANCELLED")]
    assert (strategy.status, strategy.position) == ("EXITED", "NONE")  # the strategy ends unbought
    assert not get_redis().exists(redis_keys.lock_state(strategy.pk))


@pytest.fixture(scope="module")
def one_slot(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Worker]:
    """An orders worker with one slot, and a paper fill slower than the two placements."""
    log = tmp_path_factory.mktemp("celery") / "worker.log"
    with running_worker("orders", log, {"PAPER_LATENCY_MS": "1500"}, concurrency=1) as worker:
        yield worker


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_slot_is_free_while_its_buy_waits_for_the_fill(make_strategy, one_slot):
    declare_queues()
    first, second = make_strategy(), make_strategy()

    execute_buy_task.delay(first.pk)
    execute_buy_task.delay(second.pk)

    def bought(strategy: Strategy) -> bool:
        strategy.refresh_from_db()
        return strategy.position == "BOUGHT"

    wait_until(lambda: bought(first) and bought(second), timeout=30, message=one_slot.text)
    wait_idle([one_slot], ["orders"])
    [first_buy] = paper_book(first)
    [second_buy] = paper_book(second)
    # With the slot held while following, the second BUY would be placed only after the first filled.
    assert first_buy.fill_due_at is not None and second_buy.fill_due_at is not None
    assert max(first_buy.placed_at, second_buy.placed_at) < min(first_buy.fill_due_at, second_buy.fill_due_at)
    assert [o.status for o in orders(first) + orders(second)] == ["COMPLETE", "COMPLETE"]
