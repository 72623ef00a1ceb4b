"""Events about an order name it (an order's history is its events), every emit counts
a metric by code and writes one JSON line with its ids, and the monitoring events L1
(a strategy's BUY, SELL, SL or STOP outcome) and L3 (a caught broker or Redis failure)
come from the real paths that produce them."""

import json
import logging

import pytest
import redis
from prometheus_client import REGISTRY

from execution.models import Order
from execution.services import strategy_buy_execute, strategy_sell_execute, strategy_stoploss_execute
from market import services as market_services
from market.consumers import TickConsumer
from market.ticks import BATCH_TYPE
from monitoring.events import Event
from monitoring.models import EventLog
from monitoring.services import emit
from strategies.services import strategy_stop
from tests.brokers.kite_sim_fixtures import kite_sim, sim_account
from tests.execution.conftest import kite_account, make_strategy, quick_execution

__all__ = ["kite_account", "kite_sim", "make_strategy", "quick_execution", "sim_account"]

pytestmark = pytest.mark.django_db


def events_of(strategy, code: str) -> list[EventLog]:
    return list(EventLog.objects.filter(strategy=strategy, code=code).order_by("id"))


def test_the_order_events_of_a_buy_name_their_order(make_strategy):
    strategy = make_strategy()

    order = strategy_buy_execute(strategy_id=strategy.pk)

    assert order is not None
    by_code = dict(EventLog.objects.filter(strategy=strategy).values_list("code", "order_id"))
    assert by_code["E1"] is None and by_code["X2"] is None  # before the order exists
    assert by_code["L2"] == by_code["B3"] == by_code["E5"] == by_code["L1"] == order.pk
    assert set(order.events.values_list("code", flat=True)) == {"L2", "B3", "E5", "L1"}


def test_emit_counts_the_event_by_code(user):
    before = REGISTRY.get_sample_value("algotrader_events_total", {"code": "U2"}) or 0.0

    emit(Event.U2_USER_LOGGED_IN, user=user)
    emit(Event.U2_USER_LOGGED_IN, user=user)

    assert REGISTRY.get_sample_value("algotrader_events_total", {"code": "U2"}) == before + 2


def test_the_json_line_of_an_event_carries_its_ids(make_strategy, json_lines):
    strategy = make_strategy()
    order = Order.objects.create(
        strategy=strategy, account=strategy.broker_account, side="BUY", reason="BUY", quantity=1
    )

    record = emit(Event.B3_ORDER_ACCEPTED, strategy=strategy, order=order, payload={"tag": "ATX"})

    [line] = [line for line in json_lines() if line.get("event") == "B3"]
    assert (line["event_id"], line["strategy_id"], line["order_id"], line["user_id"]) == (
        record.pk,
        strategy.pk,
        order.pk,
        strategy.owner_id,
    )
    assert line["level"] == "INFO" and line["logger"] == "algotrader.events"


def test_l1_records_buy_and_sell_outcomes(make_strategy):
    strategy = make_strategy()

    buy = strategy_buy_execute(strategy_id=strategy.pk)
    sell = strategy_sell_execute(strategy_id=strategy.pk, reason="SELL")

    assert buy is not None and sell is not None
    logged = [(e.payload["action"], e.payload["outcome"], e.order_id) for e in events_of(strategy, "L1")]
    assert logged == [("BUY", "COMPLETE", buy.pk), ("SELL", "COMPLETE", sell.pk)]


def test_l1_records_a_stoploss_exit_as_sl(make_strategy):
    strategy = make_strategy(position="BOUGHT")

    exit_order = strategy_stoploss_execute(strategy_id=strategy.pk)

    assert exit_order is not None
    [logged] = events_of(strategy, "L1")
    assert (logged.payload["action"], logged.payload["outcome"], logged.order_id) == ("SL", "COMPLETE", exit_order.pk)


def test_l1_records_a_stop(make_strategy):
    strategy = make_strategy()

    strategy_stop(user=strategy.owner, strategy_id=strategy.pk)

    [logged] = events_of(strategy, "L1")
    assert (logged.payload["action"], logged.payload["outcome"], logged.payload["exit"]) == ("STOP", "STOPPED", False)


def test_a_broker_failure_in_the_order_pipeline_is_l3_with_its_order(
    make_strategy, kite_account, kite_sim, sim_account
):
    strategy = make_strategy(account=kite_account)
    kite_sim.set_fault("server_error", endpoint="place_order", api_key=sim_account.api_key)

    strategy_buy_execute(strategy_id=strategy.pk)

    errors = events_of(strategy, "L3")
    assert errors, "a 5xx from the broker must be recorded as L3"
    first = errors[0]
    assert first.payload["source"] == "broker"
    assert first.order_id == Order.objects.filter(strategy=strategy).order_by("id").values_list("pk", flat=True)[0]
    assert sim_account.access_token not in json.dumps(first.payload) + first.message


def test_a_redis_failure_in_the_tick_consumer_is_l3_and_the_consumer_goes_on(monkeypatch, caplog):
    # A real client of a port where no Redis listens: the failure is a real ConnectionError.
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, decode_responses=True)
    consumer = TickConsumer()
    monkeypatch.setattr(market_services, "get_redis", lambda: dead)
    message = {"type": BATCH_TYPE, "ticks": [["NSE:INFY", 1540.2, 1000.0]], "received_at": 0.0}

    with caplog.at_level(logging.ERROR, logger="market.consumers"):
        consumer.ticks_batch(message)
        consumer.ticks_batch(message)  # the same outage: one L3, not one a batch

    [error] = EventLog.objects.filter(code="L3")
    assert error.payload["source"] == "redis" and error.payload["error_type"] == "ConnectionError"
    assert "tick batch not applied" in caplog.text
