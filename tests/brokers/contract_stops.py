"""The contract for stop orders and modifications every broker adapter passes, as Kite
behaves: a SL-M SELL below the last price rests until the price falls through it, its
trigger can be moved, it can be turned into a MARKET order that fills at once, an order
takes at most 25 modifications, and a cancelled order reads CANCELLED.

A test module per adapter subclasses ``StopOrderContract`` and provides the fixtures
``adapter`` (a fresh account), ``instrument`` ((exchange, symbol) of a liquid equity whose
previous close is near 1540, e.g. NSE:INFY) and ``set_price`` (a callable moving that
instrument's last price at the broker: ``set_price(exchange, symbol, Decimal)``). A resting
stop's ``raw_status`` is Kite's: TRIGGER PENDING (or OPEN once triggered)."""

import time
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import TypeVar

import pytest

from brokers.adapters.base import BrokerAdapter, BrokerOrder, BrokerOrderStatus, OrderRequest, OrderType, Side
from brokers.exceptions import OrderRejected, RateLimited
from tests.brokers.contract import wait_final
from tests.waiting import wait_until

T = TypeVar("T")
LAST = Decimal("1540")
RESTING = frozenset({"TRIGGER PENDING", "OPEN"})
MAX_MODIFICATIONS = 25


def within_rate(call: Callable[[], T]) -> T:
    """A call made again after a 429, as a client keeping to the broker's rate does."""
    while True:
        try:
            return call()
        except RateLimited:
            time.sleep(0.2)


def stop_sell(instrument: tuple[str, str], trigger: Decimal, tag: str) -> OrderRequest:
    return OrderRequest(
        exchange=instrument[0],
        symbol=instrument[1],
        side=Side.SELL,
        quantity=2,
        tag=tag,
        order_type=OrderType.SL_M,
        trigger_price=trigger,
    )


def wait_resting(adapter: BrokerAdapter, order_id: str) -> BrokerOrder:
    """The stop once the broker holds it, waiting for its trigger."""

    def resting() -> BrokerOrder | None:
        order = within_rate(lambda: adapter.get_order(order_id))
        return order if order.raw_status in RESTING else None

    return wait_until(resting, timeout=10, interval=0.2, message=f"stop {order_id} never rested")


class StopOrderContract:
    @pytest.fixture(autouse=True)
    def _at_the_last_price(self, set_price, instrument):
        set_price(*instrument, LAST)

    def test_a_stop_sell_below_the_last_price_rests_until_triggered(self, adapter, instrument):
        order_id = adapter.place_order(stop_sell(instrument, Decimal("1500"), "stoprest1"))

        order = wait_resting(adapter, order_id)

        assert order.status is BrokerOrderStatus.OPEN
        assert order.raw_status == "TRIGGER PENDING"
        assert (order.order_type, order.trigger_price, order.filled_quantity) == ("SL-M", Decimal("1500"), 0)

    def test_a_stop_sell_fills_once_the_price_falls_through_its_trigger(self, adapter, instrument, set_price):
        order_id = adapter.place_order(stop_sell(instrument, Decimal("1500"), "stopfall1"))
        wait_resting(adapter, order_id)

        set_price(*instrument, Decimal("1490"))

        filled = wait_final(adapter, order_id)
        assert (filled.status, filled.filled_quantity) == (BrokerOrderStatus.COMPLETE, 2)
        assert filled.average_price is not None and filled.average_price <= Decimal("1500")

    def test_a_stops_trigger_can_be_moved(self, adapter, instrument, set_price):
        order_id = adapter.place_order(stop_sell(instrument, Decimal("1500"), "stopmove1"))
        wait_resting(adapter, order_id)

        adapter.modify_order(order_id, trigger_price=Decimal("1520"))

        moved = wait_resting(adapter, order_id)
        assert (moved.trigger_price, moved.status) == (Decimal("1520"), BrokerOrderStatus.OPEN)
        set_price(*instrument, Decimal("1515"))  # below the new trigger, above the old one
        assert wait_final(adapter, order_id).status is BrokerOrderStatus.COMPLETE

    def test_a_stop_modified_to_market_fills_at_once(self, adapter, instrument):
        order_id = adapter.place_order(stop_sell(instrument, Decimal("1500"), "stopmkt1"))
        wait_resting(adapter, order_id)

        adapter.modify_order(order_id, order_type=OrderType.MARKET)

        filled = wait_final(adapter, order_id)
        assert (filled.status, filled.filled_quantity) == (BrokerOrderStatus.COMPLETE, 2)

    def test_the_26th_modification_of_an_order_is_refused(self, adapter, instrument):
        order_id = adapter.place_order(stop_sell(instrument, Decimal("1400"), "stopcap1"))
        wait_resting(adapter, order_id)
        for n in range(MAX_MODIFICATIONS):
            within_rate(partial(adapter.modify_order, order_id, trigger_price=Decimal(1401 + n)))

        with pytest.raises(OrderRejected) as refused:
            within_rate(lambda: adapter.modify_order(order_id, trigger_price=Decimal("1450")))

        assert "modifications" in refused.value.message
        kept = within_rate(lambda: adapter.get_order(order_id))
        assert (kept.trigger_price, kept.status) == (Decimal(1400 + MAX_MODIFICATIONS), BrokerOrderStatus.OPEN)

    def test_a_cancelled_stop_reads_cancelled(self, adapter, instrument):
        order_id = adapter.place_order(stop_sell(instrument, Decimal("1500"), "stopcxl1"))
        wait_resting(adapter, order_id)

        adapter.cancel_order(order_id)

        cancelled = wait_final(adapter, order_id)
        assert (cancelled.status, cancelled.raw_status, cancelled.filled_quantity) == (
            BrokerOrderStatus.CANCELLED,
            "CANCELLED",
            0,
        )
