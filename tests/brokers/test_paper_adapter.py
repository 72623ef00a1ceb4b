"""The paper broker beyond the contract: fills at the last tick with slippage against the
trader, latency, limit orders that wait for the price, the NSE session, isolated books,
and a feed that survives its handler."""

import threading
import time
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from brokers.adapters.base import BrokerOrderStatus, OrderRequest, OrderType, Side, Tick
from brokers.adapters.paper import PaperAdapter
from brokers.exceptions import OrderRejected
from brokers.instruments import find_instrument
from tests.factories import BrokerAccountFactory

IST = ZoneInfo("Asia/Kolkata")


@pytest.fixture
def paper(db, settings):
    settings.PAPER_SLIPPAGE_BPS = 0
    settings.PAPER_LATENCY_MS = 0
    settings.PAPER_MARKET_ALWAYS_OPEN = True
    return PaperAdapter(BrokerAccountFactory.create())


def last_tick(symbol: str, price: str) -> None:
    get_redis().hset(redis_keys.price("NSE", symbol), mapping={"price": price, "ts": time.time()})


def order(side: Side, quantity: int = 1, tag: str = "t1", **kwargs) -> OrderRequest:
    return OrderRequest("NSE", "INFY", side=side, quantity=quantity, tag=tag, **kwargs)


@pytest.mark.parametrize(("side", "filled_at"), [(Side.BUY, Decimal("1501.5")), (Side.SELL, Decimal("1498.5"))])
def test_a_market_order_fills_at_the_last_tick_moved_against_the_trader(paper, settings, side, filled_at):
    settings.PAPER_SLIPPAGE_BPS = 10
    last_tick("INFY", "1500.0")

    placed = paper.get_order(paper.place_order(order(side)))

    assert placed.status is BrokerOrderStatus.COMPLETE
    assert placed.average_price == filled_at


def test_without_any_tick_the_reference_price_stands_in(paper):
    infy = find_instrument("NSE", "INFY")
    assert infy is not None

    placed = paper.get_order(paper.place_order(order(Side.BUY)))

    assert placed.average_price == infy.reference_price


def test_a_market_order_completes_only_once_the_latency_has_passed(paper, settings):
    settings.PAPER_LATENCY_MS = 500
    with time_machine.travel(datetime(2026, 11, 24, 10, 0, tzinfo=IST), tick=False) as clock:
        order_id = paper.place_order(order(Side.BUY))
        before = paper.get_order(order_id).status
        clock.shift(0.6)
        after = paper.get_order(order_id).status

    assert (before, after) == (BrokerOrderStatus.OPEN, BrokerOrderStatus.COMPLETE)


def test_a_limit_buy_waits_until_the_price_falls_to_it(paper):
    last_tick("INFY", "1500.0")
    order_id = paper.place_order(order(Side.BUY, order_type=OrderType.LIMIT, price=Decimal("1400")))
    waiting = paper.get_order(order_id).status

    last_tick("INFY", "1390.0")
    filled = paper.get_order(order_id)

    assert waiting is BrokerOrderStatus.OPEN
    assert (filled.status, filled.average_price) == (BrokerOrderStatus.COMPLETE, Decimal("1390.0"))


def test_a_completed_order_cannot_be_cancelled(paper):
    order_id = paper.place_order(order(Side.BUY))

    with pytest.raises(OrderRejected, match="COMPLETE"):
        paper.cancel_order(order_id)

    assert paper.get_order(order_id).status is BrokerOrderStatus.COMPLETE


@pytest.mark.parametrize(
    ("at", "accepted"),
    [
        (datetime(2026, 11, 23, 9, 15, tzinfo=IST), True),  # Monday, the open
        (datetime(2026, 11, 23, 15, 29, tzinfo=IST), True),
        (datetime(2026, 11, 23, 9, 14, tzinfo=IST), False),
        (datetime(2026, 11, 23, 15, 30, tzinfo=IST), False),
        (datetime(2026, 11, 28, 11, 0, tzinfo=IST), False),  # Saturday
    ],
)
def test_orders_are_taken_only_in_the_nse_session_unless_always_open(paper, settings, at, accepted):
    settings.PAPER_MARKET_ALWAYS_OPEN = False

    with time_machine.travel(at, tick=False):
        try:
            paper.place_order(order(Side.BUY))
            outcome = True
        except OrderRejected as rejected:
            assert "market is closed" in rejected.message
            outcome = False

    assert outcome is accepted


@pytest.mark.parametrize("tag", ["", "has space", "x" * 21, "dash-ed"])
def test_a_tag_that_is_not_1_to_20_letters_or_digits_is_rejected(paper, tag):
    with pytest.raises(OrderRejected):
        paper.place_order(order(Side.BUY, tag=tag))


def test_an_index_has_a_price_but_cannot_be_traded(paper):
    price = paper.last_price("NSE", "NIFTY 50")

    with pytest.raises(OrderRejected, match="index"):
        paper.place_order(OrderRequest("NSE", "NIFTY 50", side=Side.BUY, quantity=1, tag="idx1"))

    assert price > 0


def test_a_limit_order_without_a_price_is_rejected(paper):
    with pytest.raises(OrderRejected):
        paper.place_order(order(Side.BUY, order_type=OrderType.LIMIT))


def test_another_accounts_book_is_invisible(paper):
    order_id = paper.place_order(order(Side.BUY, tag="mine1"))
    other = PaperAdapter(BrokerAccountFactory.create())

    with pytest.raises(OrderRejected):
        other.get_order(order_id)
    assert other.orders_by_tag("mine1") == []
    assert other.positions() == []


def test_a_position_carries_the_weighted_average_of_its_buys(paper):
    last_tick("INFY", "100.0")
    paper.place_order(order(Side.BUY, quantity=2, tag="b1"))
    last_tick("INFY", "110.0")
    paper.place_order(order(Side.BUY, quantity=2, tag="b2"))
    paper.place_order(order(Side.SELL, quantity=1, tag="s1"))

    [position] = paper.positions()

    assert (position.quantity, position.average_price) == (3, Decimal("105"))


def test_a_flat_position_is_listed_with_quantity_zero(paper):
    paper.place_order(order(Side.BUY, quantity=2, tag="b1"))
    paper.place_order(order(Side.SELL, quantity=2, tag="s1"))

    [position] = paper.positions()

    assert position.quantity == 0


def test_yesterdays_intraday_position_and_tags_are_gone_today(paper):
    with time_machine.travel(datetime(2026, 11, 23, 15, 0, tzinfo=IST), tick=False):
        paper.place_order(order(Side.BUY, quantity=2, tag="yday1"))

    with time_machine.travel(datetime(2026, 11, 24, 9, 30, tzinfo=IST), tick=False):
        positions, tagged = paper.positions(), paper.orders_by_tag("yday1")

    assert (positions, tagged) == ([], [])


class RecordingEvents:
    def __init__(self):
        self.errors: list[str] = []

    def on_connected(self):
        pass

    def on_disconnected(self, reason):
        pass

    def on_error(self, reason):
        self.errors.append(reason)


def test_a_failing_tick_handler_does_not_stop_the_feed(paper, settings):
    settings.PAPER_TICK_INTERVAL = 0.02
    batches: list[list[Tick]] = []
    two_batches = threading.Event()

    def handler(ticks):
        batches.append(ticks)
        if len(batches) == 1:
            raise RuntimeError("consumer hiccup")
        two_batches.set()

    events = RecordingEvents()
    stream = paper.tick_stream(handler, events)
    stream.start()
    stream.subscribe([("NSE", "INFY")])
    try:
        assert two_batches.wait(5)
    finally:
        stream.stop()

    assert events.errors == ["tick handler failed: RuntimeError"]
    assert not stream.connected


def test_the_feed_continues_from_the_last_price_the_system_saw(paper, settings):
    settings.PAPER_TICK_INTERVAL = 0.02
    last_tick("INFY", "2000.0")
    first = threading.Event()
    seen: list[Tick] = []

    def handler(ticks):
        seen.extend(ticks)
        first.set()

    stream = paper.tick_stream(handler)
    stream.subscribe([("NSE", "INFY")])
    stream.start()
    try:
        assert first.wait(5)
    finally:
        stream.stop()

    assert abs(seen[0].price - 2000.0) < 20


# -- stop orders and modifications (the protective stop) ----------------------------------


def stop_sell(trigger: str, **kwargs) -> OrderRequest:
    kwargs.setdefault("order_type", OrderType.SL_M)
    return order(Side.SELL, trigger_price=Decimal(trigger), **kwargs)


def test_an_sl_m_sell_rests_trigger_pending_while_the_price_is_above_its_trigger(paper):
    last_tick("INFY", "1500.0")

    resting = paper.get_order(paper.place_order(stop_sell("1480")))

    assert (resting.status, resting.raw_status) == (BrokerOrderStatus.OPEN, "TRIGGER PENDING")
    assert (resting.order_type, resting.trigger_price) == ("SL-M", Decimal("1480"))


def test_an_sl_m_sell_fills_at_market_once_the_price_reaches_its_trigger(paper):
    last_tick("INFY", "1500.0")
    order_id = paper.place_order(stop_sell("1480"))

    last_tick("INFY", "1475.0")
    filled = paper.get_order(order_id)

    assert (filled.status, filled.average_price) == (BrokerOrderStatus.COMPLETE, Decimal("1475.0"))


def test_a_triggered_sl_sell_waits_for_its_limit(paper):
    last_tick("INFY", "1500.0")
    order_id = paper.place_order(stop_sell("1480", order_type=OrderType.SL, price=Decimal("1470")))
    last_tick("INFY", "1460.0")  # through the trigger, below the limit: triggered, not filled
    triggered = paper.get_order(order_id)

    last_tick("INFY", "1472.0")
    filled = paper.get_order(order_id)

    assert (triggered.status, triggered.raw_status) == (BrokerOrderStatus.OPEN, "OPEN")
    assert (filled.status, filled.average_price) == (BrokerOrderStatus.COMPLETE, Decimal("1472.0"))


def test_a_stop_order_without_a_trigger_is_rejected(paper):
    with pytest.raises(OrderRejected):
        paper.place_order(order(Side.SELL, order_type=OrderType.SL_M))


def test_modifying_the_trigger_moves_where_the_stop_fires(paper):
    last_tick("INFY", "1500.0")
    order_id = paper.place_order(stop_sell("1480"))

    paper.modify_order(order_id, trigger_price=Decimal("1495"))
    last_tick("INFY", "1494.0")
    filled = paper.get_order(order_id)

    assert (filled.status, filled.trigger_price) == (BrokerOrderStatus.COMPLETE, Decimal("1495"))


def test_modifying_a_resting_stop_to_market_fills_it_at_the_last_tick(paper):
    last_tick("INFY", "1500.0")
    order_id = paper.place_order(stop_sell("1480"))

    paper.modify_order(order_id, order_type=OrderType.MARKET)
    filled = paper.get_order(order_id)

    assert (filled.status, filled.order_type, filled.average_price) == (
        BrokerOrderStatus.COMPLETE,
        "MARKET",
        Decimal("1500.0"),
    )


def test_modifying_the_quantity_of_a_resting_stop_sells_the_new_quantity(paper):
    last_tick("INFY", "1500.0")
    order_id = paper.place_order(stop_sell("1480", quantity=2))

    paper.modify_order(order_id, quantity=5)
    last_tick("INFY", "1470.0")
    filled = paper.get_order(order_id)

    assert (filled.status, filled.filled_quantity) == (BrokerOrderStatus.COMPLETE, 5)


def test_a_filled_stop_cannot_be_modified(paper):
    last_tick("INFY", "1500.0")
    order_id = paper.place_order(stop_sell("1480"))
    last_tick("INFY", "1470.0")

    with pytest.raises(OrderRejected) as refused:
        paper.modify_order(order_id, order_type=OrderType.MARKET)

    assert refused.value.permanent
    assert paper.get_order(order_id).status is BrokerOrderStatus.COMPLETE


def test_a_26th_modification_is_refused_as_kite_refuses_it(paper):
    last_tick("INFY", "1500.0")
    order_id = paper.place_order(stop_sell("1400"))
    for step in range(25):
        paper.modify_order(order_id, trigger_price=Decimal(1401 + step))

    with pytest.raises(OrderRejected):
        paper.modify_order(order_id, trigger_price=Decimal("1450"))

    assert paper.get_order(order_id).trigger_price == Decimal("1425")


def test_a_cancelled_stop_is_reported_cancelled_and_never_fills(paper):
    last_tick("INFY", "1500.0")
    order_id = paper.place_order(stop_sell("1480"))

    paper.cancel_order(order_id)
    last_tick("INFY", "1470.0")

    assert paper.get_order(order_id).status is BrokerOrderStatus.CANCELLED
