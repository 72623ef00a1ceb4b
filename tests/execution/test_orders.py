"""The order as a write-ahead intent: its tag, and the constraints that protect money."""

import re

import pytest
from django.db import IntegrityError, transaction

from execution.exceptions import OrderConflict
from execution.models import Order
from execution.services.orders import order_create, order_tag

pytestmark = pytest.mark.django_db


def test_tag_is_at_plus_base36_id_at_most_20_alphanumerics():
    assert order_tag(0) == "AT0"
    assert order_tag(35) == "ATZ"
    assert order_tag(36) == "AT10"
    assert re.fullmatch(r"[A-Z0-9]{1,20}", order_tag(36**18 - 1))


def test_an_order_gets_its_tag_in_its_insert_transaction(make_strategy):
    strategy = make_strategy()

    order = order_create(strategy=strategy, reason=Order.Reason.BUY)

    order.refresh_from_db()
    assert order.tag == order_tag(order.pk)
    assert order.status == Order.Status.PENDING
    assert order.quantity == strategy.quantity


def test_a_second_live_buy_is_refused_as_a_domain_error(make_strategy):
    strategy = make_strategy()
    order_create(strategy=strategy, reason=Order.Reason.BUY)

    with pytest.raises(OrderConflict):
        order_create(strategy=strategy, reason=Order.Reason.BUY)

    assert Order.objects.filter(strategy=strategy).count() == 1


def test_a_second_live_exit_is_refused_whatever_its_reason(make_strategy):
    strategy = make_strategy(position="BOUGHT")
    order_create(strategy=strategy, reason=Order.Reason.SELL)

    with pytest.raises(OrderConflict):
        order_create(strategy=strategy, reason=Order.Reason.STOPLOSS)


def test_a_new_exit_may_follow_a_failed_one(make_strategy):
    strategy = make_strategy(position="BOUGHT")
    failed = order_create(strategy=strategy, reason=Order.Reason.SELL)
    Order.objects.filter(pk=failed.pk).update(status=Order.Status.FAILED)

    retry = order_create(strategy=strategy, reason=Order.Reason.SELL, retry_of=failed)

    assert retry.tag != failed.tag


def test_at_most_one_filled_buy_per_strategy(make_strategy):
    strategy = make_strategy()
    first = order_create(strategy=strategy, reason=Order.Reason.BUY)
    Order.objects.filter(pk=first.pk).update(status=Order.Status.COMPLETE)
    second = order_create(strategy=strategy, reason=Order.Reason.BUY)

    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.filter(pk=second.pk).update(status=Order.Status.COMPLETE)
