"""Order updates pushed by the broker (``execution.services.updates``), in process against the
Kite simulator: an update of an order nobody follows settles it through the poll's path, once,
however often, late or out of order it comes; an update of a followed order is handed to its
follow, which then needs no poll; and the follow still polls when no update comes."""

import dataclasses
import time
from typing import Any

import pytest

from brokers.adapters.base import BrokerOrder, BrokerOrderStatus
from brokers.adapters.registry import adapter_for
from brokers.models import BrokerAccount
from execution.models import Order
from execution.services import exits, locks, position_follow, strategy_stoploss_execute
from execution.services.inbox import order_updates_mark_live
from execution.services.updates import Applied, order_update_apply
from monitoring.models import EventLog
from strategies.models import Strategy
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db


@pytest.fixture
def handed_off(monkeypatch: pytest.MonkeyPatch) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """What the stop-loss sends to the orders queue, kept here instead (nothing follows yet)."""
    sent: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(exits, "task_send", lambda name, *, args, kwargs=None, **_: sent.append((args, kwargs or {})))
    return sent


def stopped_out(make_strategy, account, handed_off) -> tuple[Strategy, Order, tuple[Any, ...], dict[str, Any]]:
    """A stop-loss's exit at the broker, its acceptance not yet recorded, its follow not started
    (the lock handed over, still held)."""
    strategy = make_strategy(account=account, position="BOUGHT")
    strategy_stoploss_execute(strategy_id=strategy.pk, hand_off=True)
    [(args, kwargs)] = handed_off
    return strategy, Order.objects.get(pk=args[0]), args, kwargs


def final_at_broker(account: BrokerAccount, broker_order_id: str) -> BrokerOrder:
    adapter = adapter_for(account)
    return wait_until(lambda: (seen := adapter.get_order(broker_order_id)).status.is_final and seen)


def unfollowed(strategy: Strategy, token: str) -> None:
    """The follow never came (its worker died with it): the lock is free."""
    lock = locks.lock_take_over(strategy_id=strategy.pk, token=token)
    assert lock is not None
    lock.release()


def count(strategy: Strategy, code: str) -> int:
    return EventLog.objects.filter(strategy=strategy, code=code).count()


def settled_via(order: Order) -> list[str]:
    """How each L2 of the order learnt the broker's final word (a poll or a pushed update)."""
    payloads = EventLog.objects.filter(order_id=order.pk, code="L2").values_list("payload", flat=True)
    return [key for payload in payloads for key in payload["request"] if key in ("get_order", "order_update")]


def test_a_final_update_of_an_order_nobody_follows_settles_it_and_exits_the_position(
    make_strategy, kite_account, handed_off
):
    # given an exit accepted at the broker whose follow never came
    strategy, order, (_, token, broker_order_id, _), _ = stopped_out(make_strategy, kite_account, handed_off)
    unfollowed(strategy, token)
    seen = final_at_broker(kite_account, broker_order_id)

    # when the broker's update arrives
    applied = order_update_apply(account_id=kite_account.pk, seen=seen)

    # then the order is adopted (its acceptance was never recorded) and settled, and the position exits
    assert applied is Applied.SETTLED
    order.refresh_from_db()
    assert (order.status, order.broker_order_id, order.filled_quantity) == ("COMPLETE", broker_order_id, 1)
    strategy.refresh_from_db()
    assert (strategy.status, strategy.position) == ("EXITED", "EXITED_BY_SL")
    assert settled_via(order) == ["order_update"]


def test_the_same_final_update_twice_settles_the_order_once(make_strategy, kite_account, handed_off):
    # given an unfollowed exit the broker filled
    strategy, _order, (_, token, broker_order_id, _), _ = stopped_out(make_strategy, kite_account, handed_off)
    unfollowed(strategy, token)
    seen = final_at_broker(kite_account, broker_order_id)

    # when its update is delivered twice (the ticker and the postback)
    first = order_update_apply(account_id=kite_account.pk, seen=seen)
    second = order_update_apply(account_id=kite_account.pk, seen=seen)

    # then only the first moved anything: one E5, one position outcome
    assert (first, second) == (Applied.SETTLED, Applied.IGNORED)
    assert (count(strategy, "E5"), count(strategy, "S5"), count(strategy, "L1")) == (1, 1, 1)


def test_an_open_update_after_complete_changes_nothing(make_strategy, kite_account, handed_off):
    # given an unfollowed exit settled by its COMPLETE update
    strategy, order, (_, token, broker_order_id, _), _ = stopped_out(make_strategy, kite_account, handed_off)
    unfollowed(strategy, token)
    complete = final_at_broker(kite_account, broker_order_id)
    order_update_apply(account_id=kite_account.pk, seen=complete)
    events = EventLog.objects.filter(strategy=strategy).count()

    # when an older OPEN update of it comes late (out of order), with nothing filled
    stale = dataclasses.replace(
        complete, status=BrokerOrderStatus.OPEN, raw_status="OPEN", filled_quantity=0, average_price=None
    )
    applied = order_update_apply(account_id=kite_account.pk, seen=stale)

    # then the order stays COMPLETE with its fill and nothing more is recorded
    assert applied is Applied.HANDED  # only a follow could read it, and none is left
    order.refresh_from_db()
    assert (order.status, order.filled_quantity) == ("COMPLETE", 1)
    assert EventLog.objects.filter(strategy=strategy).count() == events


def test_a_late_update_of_an_order_its_follow_settled_changes_nothing(make_strategy, kite_account, handed_off):
    # given an exit its follow settled by polling
    strategy, _order, args, kwargs = stopped_out(make_strategy, kite_account, handed_off)
    position_follow(order_id=args[0], lock_token=args[1], broker_order_id=args[2], request=args[3], **kwargs)
    seen = final_at_broker(kite_account, args[2])
    events = EventLog.objects.filter(strategy=strategy).count()

    # when the broker's update of it arrives afterwards
    applied = order_update_apply(account_id=kite_account.pk, seen=seen)

    # then it changes nothing
    assert applied is Applied.IGNORED
    assert EventLog.objects.filter(strategy=strategy).count() == events
    assert count(strategy, "E5") == 1


def test_an_update_of_a_followed_order_is_handed_to_its_follow_which_needs_no_poll(
    settings, make_strategy, kite_account, handed_off
):
    # given the account's update stream up, a follow that would wait long for an update before
    # polling, and an exit whose follow holds the lock
    settings.ORDER_UPDATE_WAIT_SECONDS = 60.0  # beyond ORDER_FOLLOW_SECONDS: a poll would come too late
    order_updates_mark_live(account_id=kite_account.pk, live=True, ttl=60)
    strategy, order, args, kwargs = stopped_out(make_strategy, kite_account, handed_off)
    seen = final_at_broker(kite_account, args[2])

    # when the update arrives before the follow starts, and the follow then runs
    applied = order_update_apply(account_id=kite_account.pk, seen=seen)
    started = time.monotonic()
    position_follow(order_id=args[0], lock_token=args[1], broker_order_id=args[2], request=args[3], **kwargs)

    # then the update waited for the follow, which settled the exit from it without asking the broker
    assert applied is Applied.HANDED
    order.refresh_from_db()
    strategy.refresh_from_db()
    assert order.status == "COMPLETE" and strategy.position == "EXITED_BY_SL"
    assert settled_via(order) == ["order_update"]
    assert time.monotonic() - started < 5


def test_a_follow_polls_when_no_update_comes_within_the_wait(settings, make_strategy, kite_account, handed_off):
    # given the account's update stream up, but this order's updates lost
    settings.ORDER_UPDATE_WAIT_SECONDS = 0.3
    order_updates_mark_live(account_id=kite_account.pk, live=True, ttl=60)
    _strategy, order, args, kwargs = stopped_out(make_strategy, kite_account, handed_off)

    # when its follow runs
    position_follow(order_id=args[0], lock_token=args[1], broker_order_id=args[2], request=args[3], **kwargs)

    # then it asked the broker once the wait was over, and the exit completed
    order.refresh_from_db()
    assert order.status == "COMPLETE"
    assert settled_via(order) == ["get_order"]


def test_a_conflicting_final_update_after_complete_changes_nothing(make_strategy, kite_account, handed_off):
    # given an unfollowed exit settled COMPLETE by its update
    strategy, order, (_, token, broker_order_id, _), _ = stopped_out(make_strategy, kite_account, handed_off)
    unfollowed(strategy, token)
    complete = final_at_broker(kite_account, broker_order_id)
    order_update_apply(account_id=kite_account.pk, seen=complete)

    # when a CANCELLED update with a smaller fill comes after it (a broker's stale or wrong word)
    cancelled = dataclasses.replace(
        complete, status=BrokerOrderStatus.CANCELLED, raw_status="CANCELLED", filled_quantity=0, average_price=None
    )
    applied = order_update_apply(account_id=kite_account.pk, seen=cancelled)

    # then the final order never moves again: still COMPLETE with its fill and price
    assert applied is Applied.IGNORED
    order.refresh_from_db()
    assert (order.status, order.filled_quantity, order.fill_price) == ("COMPLETE", 1, complete.average_price)
    assert count(strategy, "E5") == 1
