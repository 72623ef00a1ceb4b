"""Through real Celery workers against the Kite simulator over real HTTP, one worker on
``orders`` and one on ``stoploss`` as the Procfile runs them: BUY, SELL and STOPLOSS
place exactly the orders they should, a dropped response is adopted by its tag, a partly
filled exit has its rest exited, and a rejected exit is placed again by the settlement
task. The simulator's order book is the judge."""

import threading
from collections.abc import Iterator
from functools import partial

import pytest

from brokers.kite_sim import KiteSimulator
from execution.models import Order
from execution.tasks import execute_buy_task, execute_sell_task, execute_stoploss_task, settle_orders_task
from strategies.models import Strategy
from tests.execution.helpers import codes, orders
from tests.execution.workers import Worker, running_worker, settling, wait_idle
from tests.strategies.scheduling_helpers import declare_queues
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WORKER_ENV = {
    "ORDER_FOLLOW_SECONDS": "10",
    "ORDER_UNKNOWN_GRACE_SECONDS": "0.5",
    "ORDER_RETRY_SECONDS_BUY": "2",
    "ORDER_RETRY_SECONDS_SELL": "3",
    "ORDER_RETRY_SECONDS_STOPLOSS": "5",
    "ORDER_RETRY_BACKOFF_MAX_SECONDS": "0.1",
    "ORDER_SETTLE_AFTER_SECONDS": "0",
    "EXIT_RETRY_FIRST_DELAY_SECONDS": "0",
    "EXIT_RETRY_MAX_DELAY_SECONDS_STOPLOSS": "0",
    "EXIT_RETRY_MAX_DELAY_SECONDS_SELL": "0",
}


@pytest.fixture(scope="module")
def workers(
    django_db_setup, django_db_blocker, kite_sim: KiteSimulator, tmp_path_factory
) -> Iterator[tuple[Worker, Worker]]:
    env = {**WORKER_ENV, "KITE_API_ROOT": kite_sim.api_root, "KITE_WS_ROOT": kite_sim.ws_root}
    logs = tmp_path_factory.mktemp("celery")
    with (
        running_worker("orders", logs / "orders.log", env) as orders_worker,
        running_worker("stoploss", logs / "stoploss.log", env) as stoploss_worker,
    ):
        yield orders_worker, stoploss_worker


@pytest.fixture(autouse=True)
def queues_declared(workers) -> Iterator[None]:
    declare_queues()  # the tests flush Redis, the queues' bindings included
    yield
    wait_idle(workers, ["orders", "stoploss"])  # before the database is flushed


def logs(workers: tuple[Worker, Worker]) -> str:
    return "\n".join(worker.text() for worker in workers)


def book(kite_sim, sim_account) -> list[tuple[str, str, str]]:
    return [(o["transaction_type"], o["tag"], o["status"]) for o in kite_sim.orders(sim_account.api_key)]


def state(strategy: Strategy) -> tuple[str, str]:
    strategy.refresh_from_db()
    return strategy.status, strategy.position


def exited(strategy: Strategy) -> bool:
    return state(strategy)[0] == "EXITED"


def settled_at_broker(kite_sim, sim_account, count: int) -> bool:
    seen = kite_sim.orders(sim_account.api_key)
    return len(seen) == count and all(o["status"] in ("COMPLETE", "REJECTED", "CANCELLED") for o in seen)


def test_buy_then_sell_through_the_orders_worker_place_two_orders_at_kite(
    make_strategy, kite_account, kite_sim, sim_account, workers
):
    strategy = make_strategy(account=kite_account)

    execute_buy_task.delay(strategy.pk)
    execute_buy_task.delay(strategy.pk)  # a redelivery: one effect
    wait_until(lambda: state(strategy) == ("RUNNING", "BOUGHT"), message=lambda: logs(workers))
    execute_sell_task.delay(strategy.pk, reason="SELL")
    wait_until(lambda: state(strategy) == ("EXITED", "SOLD"), message=lambda: logs(workers))

    buy, sell = orders(strategy)
    assert book(kite_sim, sim_account) == [("BUY", buy.tag, "COMPLETE"), ("SELL", sell.tag, "COMPLETE")]
    assert (buy.status, sell.status) == (Order.Status.COMPLETE, Order.Status.COMPLETE)
    assert codes(strategy).count("S5") == 1


def test_buy_then_stoploss_through_the_stoploss_worker_place_one_exit_at_kite(
    make_strategy, kite_account, kite_sim, sim_account, workers
):
    strategy = make_strategy(account=kite_account)

    execute_buy_task.delay(strategy.pk)
    wait_until(lambda: state(strategy) == ("RUNNING", "BOUGHT"), message=lambda: logs(workers))
    execute_stoploss_task.delay(strategy.pk)
    execute_stoploss_task.delay(strategy.pk)  # the same trigger delivered twice
    wait_until(lambda: state(strategy) == ("EXITED", "EXITED_BY_SL"), message=lambda: logs(workers))

    def nothing_to_do() -> int:  # deliveries that found the strategy exited, so far
        return sum(w.text(tail=10**7).count("strategy has exited: nothing to execute") for w in workers)

    wait_until(lambda: not any(worker.busy() for worker in workers), message=lambda: logs(workers))
    before = nothing_to_do()
    execute_sell_task.delay(strategy.pk, reason="SELL")  # the SELL timer, too late: places nothing
    wait_until(lambda: nothing_to_do() > before, message=lambda: logs(workers))
    assert "E2" not in codes(strategy)  # nothing is recorded after S5

    buy, exit_order = orders(strategy)
    assert exit_order.reason == Order.Reason.STOPLOSS
    assert book(kite_sim, sim_account) == [("BUY", buy.tag, "COMPLETE"), ("SELL", exit_order.tag, "COMPLETE")]
    _, stoploss_worker = workers
    assert "execution.tasks.execute_stoploss_task" in stoploss_worker.text(tail=10**6)


def test_a_sell_and_a_stoploss_sent_together_to_both_workers_give_one_exit(
    make_strategy, kite_account, kite_sim, sim_account, workers
):
    strategies = [make_strategy(account=kite_account, position="BOUGHT") for _ in range(5)]

    # An exit whose follow met Kite's read limit (10/s an account) to its deadline is left to
    # settlement, as in production, where beat sends it: here the test does.
    with settling():
        for strategy in strategies:
            execute_sell_task.delay(strategy.pk, reason="SELL")
            execute_stoploss_task.delay(strategy.pk)
        for strategy in strategies:
            wait_until(partial(exited, strategy), timeout=90, message=lambda: logs(workers))

    wait_until(lambda: settled_at_broker(kite_sim, sim_account, 5), message=lambda: str(book(kite_sim, sim_account)))
    exits = [o for s in strategies for o in orders(s)]
    assert len(exits) == 5
    assert sorted(tag for _, tag, _ in book(kite_sim, sim_account)) == sorted(str(o.tag) for o in exits)


def test_a_dropped_response_through_a_worker_is_adopted_by_its_tag_never_placed_twice(
    make_strategy, kite_account, kite_sim, sim_account, workers
):
    strategy = make_strategy(account=kite_account)
    kite_sim.set_fault("drop_response", api_key=sim_account.api_key)

    execute_buy_task.delay(strategy.pk)
    wait_until(lambda: state(strategy) == ("RUNNING", "BOUGHT"), message=lambda: logs(workers))

    [buy] = orders(strategy)
    assert buy.status == Order.Status.COMPLETE and buy.attempts == 1
    assert book(kite_sim, sim_account) == [("BUY", buy.tag, "COMPLETE")]
    assert "E4" not in codes(strategy)


def test_a_partly_filled_stoploss_through_a_worker_has_its_rest_exited(
    make_strategy, kite_account, kite_sim, sim_account, workers
):
    strategy = make_strategy(account=kite_account, quantity=4)
    execute_buy_task.delay(strategy.pk)
    wait_until(lambda: state(strategy) == ("RUNNING", "BOUGHT"), message=lambda: logs(workers))
    kite_sim.set_fault("partial_fill", quantity=1, api_key=sim_account.api_key)

    execute_stoploss_task.delay(strategy.pk)
    wait_until(lambda: state(strategy) == ("EXITED", "EXITED_BY_SL"), message=lambda: logs(workers))

    seen = kite_sim.orders(sim_account.api_key)
    assert [(o["transaction_type"], o["quantity"], o["filled_quantity"]) for o in seen] == [
        ("BUY", 4, 4),
        ("SELL", 4, 1),
        ("SELL", 3, 3),
    ]
    assert sum(row["quantity"] for row in kite_sim.book.positions(sim_account.api_key)) == 0


def test_a_rejected_exit_is_placed_again_by_the_settlement_task(
    make_strategy, kite_account, kite_sim, sim_account, workers
):
    strategy = make_strategy(account=kite_account, position="BOUGHT")
    kite_sim.set_fault("reject", api_key=sim_account.api_key)

    execute_stoploss_task.delay(strategy.pk)
    wait_until(
        lambda: Order.objects.filter(strategy=strategy, status="REJECTED").exists(), message=lambda: logs(workers)
    )
    assert state(strategy) == ("RUNNING", "EXITING")
    stop = threading.Event()

    def beat() -> None:  # what celery beat does every ORDER_SETTLE_SECONDS
        while not stop.wait(0.5):
            settle_orders_task.delay()

    ticking = threading.Thread(target=beat, daemon=True)
    ticking.start()
    try:
        wait_until(lambda: state(strategy) == ("EXITED", "EXITED_BY_SL"), message=lambda: logs(workers))
    finally:
        stop.set()
        ticking.join()

    first, again = orders(strategy)
    assert again.retry_of_id == first.pk
    assert book(kite_sim, sim_account) == [("SELL", first.tag, "REJECTED"), ("SELL", again.tag, "COMPLETE")]
