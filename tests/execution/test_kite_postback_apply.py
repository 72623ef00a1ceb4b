"""Kite postbacks end to end in process: the simulator's own update of an exit nobody follows,
posted to the postback view, then its ``ORDER_UPDATE`` task run as the stop-loss worker runs it.
Delivered twice and followed by a late OPEN, it settles the exit once; forged, it changes nothing."""

import hashlib
from typing import Any

import pytest

from algotrader.queues import CeleryQueue, TaskName
from execution.models import Order
from execution.services import exits, locks, strategy_stoploss_execute
from execution.tasks import order_update_task
from monitoring.models import EventLog
from tests.strategies.scheduling_helpers import declare_queues, queued
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db

POSTBACK = "/api/v1/brokers/kite/postback/"


@pytest.fixture
def unfollowed_exit(monkeypatch, make_strategy, kite_account, kite_sim, sim_account):
    """A stop-loss's exit the broker filled, whose follow never came (the lock is free), and
    the order's final update as the simulator sent it (checksum included)."""
    declare_queues()
    kite_account.broker_user_id = sim_account.user_id
    kite_account.save(update_fields=["broker_user_id"])
    sent: list[tuple[Any, ...]] = []
    monkeypatch.setattr(exits, "task_send", lambda name, *, args, kwargs=None, **_: sent.append(args))
    strategy = make_strategy(account=kite_account, position="BOUGHT")
    strategy_stoploss_execute(strategy_id=strategy.pk, hand_off=True)
    [(order_id, token, broker_order_id, _)] = sent
    lock = locks.lock_take_over(strategy_id=strategy.pk, token=token)
    assert lock is not None
    lock.release()
    history = wait_until(
        lambda: (
            (h := kite_sim.book.history(kite_sim.accounts.get(sim_account.api_key), broker_order_id))
            and h[-1]["status"] == "COMPLETE"
            and h
        )
    )
    final = history[-1]
    checksum = hashlib.sha256(f"{broker_order_id}{final['order_timestamp']}{sim_account.api_secret}".encode())
    payload = {**final, "user_id": sim_account.user_id, "checksum": checksum.hexdigest()}
    return strategy, Order.objects.get(pk=order_id), payload


def run_queued_updates() -> int:
    """Run the queued ORDER_UPDATE tasks as the stop-loss worker would, oldest first."""
    updates = [q for q in queued(CeleryQueue.STOPLOSS) if q.task == TaskName.ORDER_UPDATE.value]
    for update in updates:
        order_update_task(*update.args, **update.kwargs)
    return len(updates)


def test_duplicated_and_reordered_postbacks_settle_the_exit_once(api_client, unfollowed_exit):
    strategy, order, complete = unfollowed_exit
    late_open = {**complete, "status": "OPEN", "filled_quantity": 0, "average_price": 0}

    # when Kite posts COMPLETE twice, then a stale OPEN, and the tasks run
    for payload in (complete, complete, late_open):
        assert api_client.post(POSTBACK, payload, format="json").status_code == 200
    ran = run_queued_updates()

    # then the exit settled once, from the update, and the position exited
    assert ran == 2
    order.refresh_from_db()
    strategy.refresh_from_db()
    assert (order.status, order.filled_quantity) == ("COMPLETE", 1)
    assert (strategy.status, strategy.position) == ("EXITED", "EXITED_BY_SL")
    codes = list(EventLog.objects.filter(strategy=strategy).values_list("code", flat=True))
    assert (codes.count("E5"), codes.count("S5"), codes.count("L1")) == (1, 1, 1)


def test_a_forged_postback_changes_nothing(api_client, unfollowed_exit):
    strategy, order, complete = unfollowed_exit
    events = EventLog.objects.filter(strategy=strategy).count()

    response = api_client.post(POSTBACK, {**complete, "checksum": "f" * 64}, format="json")

    assert response.status_code == 403
    assert run_queued_updates() == 0
    order.refresh_from_db()
    strategy.refresh_from_db()
    assert order.status == "PENDING" and strategy.position == "EXITING"
    assert EventLog.objects.filter(strategy=strategy).count() == events
