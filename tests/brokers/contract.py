"""The contract every broker adapter passes. A test module per adapter subclasses
``AdapterContract`` and provides the fixtures ``adapter`` (valid credentials, a
fresh account with an empty book), ``bad_adapter`` (credentials the broker
refuses), and ``instrument`` ((exchange, symbol) of a liquid equity)."""

from decimal import Decimal

import pytest

from brokers.adapters.base import (
    AccountProfile,
    BrokerAdapter,
    BrokerOrder,
    BrokerOrderStatus,
    Funds,
    OrderRequest,
    OrderType,
    Quote,
    Side,
    Tick,
    TickStream,
)
from brokers.exceptions import BrokerAuthError, OrderRejected
from tests.waiting import wait_until


def wait_final(adapter: BrokerAdapter, order_id: str, timeout: float = 10.0) -> BrokerOrder:
    """The order once the broker's book says it is final."""

    def final() -> BrokerOrder | None:
        order = adapter.get_order(order_id)
        return order if order.status.is_final else None

    # Under Kite's 10 reads a second an account, with room for the test's own calls.
    return wait_until(final, timeout=timeout, interval=0.2, message=f"order {order_id} not final")


def place_or_rejected(adapter: BrokerAdapter, request: OrderRequest) -> BrokerOrderStatus:
    """A broker may refuse at once (an exception) or accept and reject in its book."""
    try:
        order_id = adapter.place_order(request)
    except OrderRejected as rejected:
        assert rejected.permanent
        return BrokerOrderStatus.REJECTED
    return wait_final(adapter, order_id).status


class AdapterContract:
    def test_validate_credentials_returns_the_account_profile(self, adapter):
        profile = adapter.validate_credentials()

        assert isinstance(profile, AccountProfile)
        assert profile.broker_user_id

    def test_refused_credentials_raise_a_permanent_auth_error(self, bad_adapter):
        with pytest.raises(BrokerAuthError) as refused:
            bad_adapter.validate_credentials()

        assert refused.value.permanent

    def test_market_buy_completes_at_a_positive_price(self, adapter, instrument):
        order_id = adapter.place_order(
            OrderRequest(exchange=instrument[0], symbol=instrument[1], side=Side.BUY, quantity=3, tag="ctrbuy1")
        )

        order = wait_final(adapter, order_id)

        assert order.status is BrokerOrderStatus.COMPLETE
        assert order.filled_quantity == 3
        assert order.average_price is not None and order.average_price > 0
        assert isinstance(order.average_price, Decimal)
        assert (order.exchange, order.symbol, order.side, order.tag) == (*instrument, Side.BUY, "ctrbuy1")

    def test_an_order_is_found_again_by_its_tag(self, adapter, instrument):
        order_id = adapter.place_order(
            OrderRequest(exchange=instrument[0], symbol=instrument[1], side=Side.BUY, quantity=1, tag="ctrfind7")
        )

        found = adapter.orders_by_tag("ctrfind7")

        assert [order.broker_order_id for order in found] == [order_id]
        assert adapter.orders_by_tag("ctrnothere") == []

    def test_a_limit_order_far_from_the_market_stays_open_and_cancels(self, adapter, instrument):
        # Far, yet inside the day's circuit band (a broker rejects a price outside it).
        far_below = (adapter.last_price(*instrument) * Decimal("0.9")).quantize(Decimal("1"))
        request = OrderRequest(
            exchange=instrument[0],
            symbol=instrument[1],
            side=Side.BUY,
            quantity=1,
            tag="ctrlimit",
            order_type=OrderType.LIMIT,
            price=far_below,
        )
        order_id = adapter.place_order(request)

        assert adapter.get_order(order_id).status is BrokerOrderStatus.OPEN
        adapter.cancel_order(order_id)
        assert wait_final(adapter, order_id).status is BrokerOrderStatus.CANCELLED

    def test_an_unknown_symbol_is_rejected_permanently(self, adapter, instrument):
        request = OrderRequest(instrument[0], "NOSUCHSTOCK", side=Side.BUY, quantity=1, tag="ctrbadsym")

        assert place_or_rejected(adapter, request) is BrokerOrderStatus.REJECTED

    def test_zero_quantity_is_rejected_permanently(self, adapter, instrument):
        request = OrderRequest(exchange=instrument[0], symbol=instrument[1], side=Side.BUY, quantity=0, tag="ctrzero")

        assert place_or_rejected(adapter, request) is BrokerOrderStatus.REJECTED

    def test_positions_reflect_fills(self, adapter, instrument):
        wait_final(
            adapter,
            adapter.place_order(
                OrderRequest(exchange=instrument[0], symbol=instrument[1], side=Side.BUY, quantity=5, tag="ctrpos1")
            ),
        )
        wait_final(
            adapter,
            adapter.place_order(
                OrderRequest(exchange=instrument[0], symbol=instrument[1], side=Side.SELL, quantity=2, tag="ctrpos2")
            ),
        )

        [position] = [p for p in adapter.positions() if (p.exchange, p.symbol) == instrument]

        assert position.quantity == 3
        assert position.average_price > 0

    def test_last_price_is_a_positive_decimal(self, adapter, instrument):
        price = adapter.last_price(*instrument)

        assert isinstance(price, Decimal)
        assert price > 0

    def test_funds_are_a_decimal_or_no_limit(self, adapter):
        funds = adapter.funds()

        assert isinstance(funds, Funds)
        assert funds.available is None or (isinstance(funds.available, Decimal) and funds.available >= 0)

    def test_quotes_answer_the_known_instruments_only(self, adapter, instrument):
        quotes = adapter.quotes([instrument, (instrument[0], "NOSUCHSYMBOL")])

        assert set(quotes) == {instrument}
        quote = quotes[instrument]
        assert isinstance(quote, Quote) and quote.last_price > 0 and not quote.at_circuit

    def test_instruments_list_the_tradable_symbols(self, adapter, instrument):
        symbols = {i.symbol for i in adapter.instruments(instrument[0])}

        assert instrument[1] in symbols
        assert len(symbols) >= 20

    def test_tick_stream_delivers_batches_for_subscribed_instruments_only(self, adapter, instrument):
        batches: list[list[Tick]] = []
        stream = adapter.tick_stream(batches.append)
        assert isinstance(stream, TickStream)
        stream.start()
        try:
            stream.subscribe([instrument])
            wait_until(lambda: any(t.symbol == instrument[1] for b in batches for t in b), timeout=15)
            assert stream.connected
        finally:
            stream.stop()

        ticks = [t for b in batches for t in b]
        assert ticks, "no tick arrived within 15 s"
        assert {(t.exchange, t.symbol) for t in ticks} == {instrument}
        assert all(t.price > 0 and t.exchange_ts > 0 for t in ticks)
