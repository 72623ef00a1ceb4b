"""Positions and P&L over the API, from fills the paper broker made, every figure computed by
hand: entry and exit prices, quantity held, realized and unrealized P&L, the charges estimate
and the net; the day's summary; another user's position is a 404."""

import time
from collections.abc import Iterator
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from brokers.kite_sim import KiteSimulator
from execution.models import Order
from execution.services import strategy_buy_execute, strategy_sell_execute
from tests.execution.api_helpers import client_for, order_make
from tests.factories import BrokerAccountFactory

pytestmark = pytest.mark.django_db


def price_is(price: str) -> None:
    """The last price the paper broker fills a market order at (and the P&L is valued at)."""
    get_redis().hset(redis_keys.price("NSE", "INFY"), mapping={"price": price, "ts": time.time()})


@pytest.fixture(scope="module")
def kite_sim() -> Iterator[KiteSimulator]:
    """The Kite simulator with a still market: it fills at the price set, so the figures are round."""
    sim = KiteSimulator(tick_interval=0.1, stage_delay=0.01, volatility=0.0)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture(autouse=True)
def no_slippage(settings) -> None:
    settings.PAPER_SLIPPAGE_BPS = 0  # fills at the last price exactly, so the figures are round


@pytest.fixture
def account():
    return BrokerAccountFactory.create()


@pytest.fixture
def client(account) -> APIClient:
    return client_for(account.owner)


def test_a_closed_round_trip_realizes_the_difference_less_the_charges(make_strategy, account, client):
    # Given 10 INFY bought at 1500 and sold at 1530 through the paper broker.
    strategy = make_strategy(account=account, quantity=10)
    price_is("1500")
    strategy_buy_execute(strategy_id=strategy.pk)
    price_is("1530")
    strategy_sell_execute(strategy_id=strategy.pk, reason="SELL")

    # When the app reads the strategy's position.
    response = client.get(f"/api/v1/positions/{strategy.pk}/")

    # Then, by hand: bought 15,000, sold 15,300, realized 300.
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["bought_quantity"], body["average_buy_price"]) == (10, "1500.00")
    assert (body["sold_quantity"], body["average_sell_price"]) == (10, "1530.00")
    assert (body["held_quantity"], body["last_price"]) == (0, None)
    assert (body["realized_pnl"], body["unrealized_pnl"]) == ("300.00", "0.00")
    # Brokerage 4.50 + 4.59; STT 3.825 billed as 4; NSE 0.00297% of 30,300 = 0.89991; SEBI 0.0303;
    # stamp 0.003% of 15,000 = 0.45; GST 18% of (9.09 + 0.89991 + 0.0303) = 1.8036378.
    assert body["charges"] == {
        "brokerage": "9.09",
        "stt": "4.00",
        "transaction": "0.90",
        "sebi": "0.03",
        "stamp_duty": "0.45",
        "gst": "1.80",
        "total": "16.27",  # 16.2738478, rounded once
    }
    assert body["net_pnl"] == "283.73"  # 300 - 16.2738478
    assert (body["status"], body["position"], body["symbol"]) == ("EXITED", "SOLD", "INFY")


def test_an_open_position_is_valued_at_the_last_price(make_strategy, account, client):
    strategy = make_strategy(account=account, quantity=10)
    price_is("1500")
    strategy_buy_execute(strategy_id=strategy.pk)
    price_is("1520.35")

    body = client.get(f"/api/v1/positions/{strategy.pk}/").json()

    assert (body["held_quantity"], body["last_price"]) == (10, "1520.35")
    assert (body["realized_pnl"], body["unrealized_pnl"]) == ("0.00", "203.50")  # 10 x 20.35
    # Charges of the BUY so far: 4.50 + 0.4455 + 0.015 + 0.45 + 18% of 4.9605 (0.89289) = 6.30339.
    assert body["charges"]["total"] == "6.30"
    assert body["net_pnl"] == "197.20"  # 203.50 - 6.30339 = 197.19661


def test_partial_fills_average_by_quantity(make_strategy, account, client):
    # Given 10 bought at 100, then 4 sold at 110 by an exit cancelled after a partial fill, and
    # the other 6 at 95.
    strategy = make_strategy(account=account, quantity=10)
    order_make(strategy, "BUY", quantity=10, fill_price=Decimal("100"))
    order_make(strategy, "SELL", quantity=10, filled_quantity=4, fill_price=Decimal("110"), status="CANCELLED")
    order_make(strategy, "SELL", quantity=6, fill_price=Decimal("95"))
    order_make(strategy, "SELL", quantity=6, fill_price=None, status="REJECTED")  # filled nothing

    body = client.get(f"/api/v1/positions/{strategy.pk}/").json()

    # Then the exit averages (440 + 570) / 10 = 101, and 10 x (101 - 100) is realized.
    assert (body["sold_quantity"], body["average_sell_price"], body["held_quantity"]) == (10, "101.00", 0)
    assert body["realized_pnl"] == "10.00"
    # Three executed orders pay brokerage: 0.30 + 0.132 + 0.171.
    assert body["charges"]["brokerage"] == "0.60"


def test_a_partly_sold_position_realizes_what_was_sold_and_values_the_rest(make_strategy, account, client):
    strategy = make_strategy(account=account, quantity=10)
    order_make(strategy, "BUY", quantity=10, fill_price=Decimal("100"))
    order_make(strategy, "SELL", quantity=10, filled_quantity=3, fill_price=Decimal("104"), status="CANCELLED")
    price_is("102")

    body = client.get(f"/api/v1/positions/{strategy.pk}/").json()

    assert body["held_quantity"] == 7
    assert (body["realized_pnl"], body["unrealized_pnl"]) == ("12.00", "14.00")  # 3 x 4, 7 x 2


def test_an_open_position_without_a_price_yet_has_no_unrealized_pnl(make_strategy, account, client):
    strategy = make_strategy(account=account, quantity=2)
    order_make(strategy, "BUY", quantity=2, fill_price=Decimal("100"))

    body = client.get(f"/api/v1/positions/{strategy.pk}/").json()

    assert (body["held_quantity"], body["last_price"], body["unrealized_pnl"]) == (2, None, None)


def test_the_list_holds_the_strategies_that_traded_newest_first(make_strategy, account, client):
    traded = make_strategy(account=account)
    order_make(traded, "BUY")
    make_strategy(account=account)  # never filled
    later = make_strategy(account=account)
    order_make(later, "BUY")
    order_make(make_strategy(), "BUY")  # another user's

    response = client.get("/api/v1/positions/")
    today = client.get("/api/v1/positions/", {"date": traded.trade_date.isoformat()})
    another_day = client.get("/api/v1/positions/", {"date": "2026-01-01"})

    assert [row["strategy"] for row in response.json()["results"]] == [later.pk, traded.pk]
    assert today.json()["count"] == 2 and another_day.json()["count"] == 0


def test_the_day_summary_adds_the_days_positions_and_counts_strategies_by_status(make_strategy, account, client):
    # Given one round trip closed (+300 on 10 INFY) and one position open (+20.35 on 1 INFY).
    closed = make_strategy(account=account, quantity=10)
    price_is("1500")
    strategy_buy_execute(strategy_id=closed.pk)
    price_is("1530")
    strategy_sell_execute(strategy_id=closed.pk, reason="SELL")
    held = make_strategy(account=account)
    price_is("1500")
    strategy_buy_execute(strategy_id=held.pk)
    price_is("1520.35")
    make_strategy(account=account, status="CREATED")

    response = client.get("/api/v1/pnl/day/", {"date": closed.trade_date.isoformat()})

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["realized_pnl"], body["unrealized_pnl"]) == ("300.00", "20.35")
    # 16.2738478 for the round trip; the open BUY of 1,500: 0.45 + 0.04455 + 0.0015 + 0.045
    # + 18% of 0.49605 (0.089289) = 0.6303390.
    assert body["charges"]["total"] == "16.90"  # 16.9041868
    assert body["net_pnl"] == "303.45"  # 320.35 - 16.9041868 = 303.4458132
    assert body["strategies"] == {"CREATED": 1, "RUNNING": 1, "STOPPED": 0, "EXITED": 1}
    assert body["open_positions"] == 1


def test_the_day_summary_defaults_to_today_and_is_the_users_own(make_strategy, client):
    theirs = make_strategy()
    order_make(theirs, "BUY")

    body = client.get("/api/v1/pnl/day/").json()

    assert body["date"] == timezone.localdate(timezone=ZoneInfo("Asia/Kolkata")).isoformat()
    assert body["strategies"] == {"CREATED": 0, "RUNNING": 0, "STOPPED": 0, "EXITED": 0}
    assert (body["realized_pnl"], body["charges"]["total"], body["open_positions"]) == ("0.00", "0.00", 0)


def test_another_users_position_is_a_404(make_strategy, client):
    theirs = make_strategy()
    order_make(theirs, "BUY")

    response = client.get(f"/api/v1/positions/{theirs.pk}/")

    assert response.status_code == 404 and response.json()["error"]["code"] == "strategy_not_found"


@pytest.mark.parametrize("url", ["/api/v1/positions/", "/api/v1/pnl/day/"])
@pytest.mark.parametrize("day", ["yesterday", "2026-02-30", "0001-01-01"])
def test_a_bad_date_is_a_400_naming_it(client, url, day):
    response = client.get(url, {"date": day})

    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["date"]


def test_an_excess_sold_beyond_the_bought_is_a_short_valued_from_its_sell(make_strategy, account, client):
    strategy = make_strategy(account=account, quantity=1)
    order_make(strategy, "SELL", reason="EXCESS", quantity=2, fill_price=Decimal("100"))
    price_is("98")

    body = client.get(f"/api/v1/positions/{strategy.pk}/").json()

    assert (body["held_quantity"], body["average_sell_price"], body["unrealized_pnl"]) == (-2, "100.00", "4.00")
    assert Order.objects.filter(strategy=strategy).count() == 1


def test_a_loss_through_the_kite_simulator_is_the_difference_plus_the_charges(make_strategy, kite_account, kite_sim):
    # Given 10 INFY bought at 1500 and sold at 1490 at the Kite simulator, over real HTTP.
    strategy = make_strategy(account=kite_account, quantity=10)
    kite_sim.set_price("NSE", "INFY", "1500")
    strategy_buy_execute(strategy_id=strategy.pk)
    kite_sim.set_price("NSE", "INFY", "1490")
    strategy_sell_execute(strategy_id=strategy.pk, reason="SELL")

    body = client_for(kite_account.owner).get(f"/api/v1/positions/{strategy.pk}/").json()

    # Then, by hand: 14,900 - 15,000 realized; brokerage 4.50 + 4.47; STT 3.725 billed as 4;
    # NSE 0.00297% of 29,900 = 0.88803; SEBI 0.0299; stamp 0.45; GST 18% of 9.88793 = 1.7798274.
    assert (body["average_buy_price"], body["average_sell_price"]) == ("1500.00", "1490.00")
    assert (body["held_quantity"], body["realized_pnl"]) == (0, "-100.00")
    assert body["charges"]["total"] == "16.12"  # 16.1177574
    assert body["net_pnl"] == "-116.12"
