"""The order book over the API: the user's orders only, newest first, paginated, filtered by
strategy, exchange day (IST), status and side; bad filters are a 400 naming the field, another
user's order a 404."""

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from rest_framework.test import APIClient

from execution.models import Order
from tests.execution.api_helpers import client_for, order_make
from tests.factories import BrokerAccountFactory

pytestmark = pytest.mark.django_db

IST = ZoneInfo("Asia/Kolkata")
URL = "/api/v1/orders/"


@pytest.fixture
def account():
    return BrokerAccountFactory.create()


@pytest.fixture
def client(account) -> APIClient:
    return client_for(account.owner)


def ids(response) -> list[int]:
    assert response.status_code == 200, response.json()
    return [row["id"] for row in response.json()["results"]]


def test_the_list_is_the_users_own_orders_newest_first(make_strategy, account, client):
    strategy = make_strategy(account=account)
    buy = order_make(strategy, "BUY", fill_price=Decimal("1500.25"))
    sell = order_make(strategy, "SELL", reason="STOPLOSS", fill_price=Decimal("1480"))
    order_make(make_strategy(), "BUY")  # another user's

    response = client.get(URL)

    assert ids(response) == [sell.pk, buy.pk]
    row = response.json()["results"][1]
    assert row["side"] == "BUY" and row["reason"] == "BUY" and row["status"] == "COMPLETE"
    assert (row["quantity"], row["filled_quantity"], row["average_price"]) == (1, 1, "1500.25")
    assert (row["exchange"], row["symbol"], row["strategy"]) == ("NSE", "INFY", strategy.pk)
    assert row["tag"] == buy.tag and row["broker_order_id"] == buy.broker_order_id
    assert response.json()["results"][0]["average_price"] == "1480.00"


def test_pages_follow_limit_and_offset(make_strategy, account, client):
    made = [order_make(make_strategy(account=account), "BUY") for _ in range(3)]

    first = client.get(URL, {"limit": 2})
    second = client.get(URL, {"limit": 2, "offset": 2})

    assert first.json()["count"] == 3 and first.json()["next"]
    assert ids(first) + ids(second) == [order.pk for order in reversed(made)]


def test_filters_by_strategy_status_and_side(make_strategy, account, client):
    one, two = make_strategy(account=account), make_strategy(account=account)
    buy_one = order_make(one, "BUY")
    sell_one = order_make(one, "SELL", status=Order.Status.REJECTED, filled_quantity=0, fill_price=None)
    buy_two = order_make(two, "BUY")

    assert ids(client.get(URL, {"strategy": one.pk})) == [sell_one.pk, buy_one.pk]
    assert ids(client.get(URL, {"status": "REJECTED"})) == [sell_one.pk]
    assert ids(client.get(URL, {"side": "BUY"})) == [buy_two.pk, buy_one.pk]
    assert ids(client.get(URL, {"strategy": one.pk, "side": "BUY", "status": "COMPLETE"})) == [buy_one.pk]


def test_the_date_is_the_exchange_day_in_ist(make_strategy, account, client):
    strategy = make_strategy(account=account)
    # 00:30 IST on the 24th is still the 23rd in UTC.
    with time_machine.travel(datetime(2026, 11, 24, 0, 30, tzinfo=IST)):
        early = order_make(strategy, "BUY")
    with time_machine.travel(datetime(2026, 11, 23, 23, 50, tzinfo=IST)):
        late_on_the_23rd = order_make(make_strategy(account=account), "BUY")

    assert ids(client.get(URL, {"date": "2026-11-24"})) == [early.pk]
    assert ids(client.get(URL, {"date": "2026-11-23"})) == [late_on_the_23rd.pk]
    assert ids(client.get(URL, {"date": "2026-11-22"})) == []


def test_another_users_strategy_as_a_filter_finds_nothing(make_strategy, client):
    theirs = make_strategy()
    order_make(theirs, "BUY")

    assert ids(client.get(URL, {"strategy": theirs.pk})) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "FILLED"}, "status"),
        ({"status": ""}, "status"),
        ({"date": ""}, "date"),
        ({"side": "SHORT"}, "side"),
        ({"date": "23-11-2026"}, "date"),
        ({"date": "1900-01-01"}, "date"),
        ({"date": "9999-12-31"}, "date"),
        ({"strategy": "abc"}, "strategy"),
        ({"strategy": "0"}, "strategy"),
        ({"strategy": str(2**63)}, "strategy"),
        ({"limit": "0"}, "limit"),
    ],
)
def test_a_bad_filter_is_a_400_naming_it(client, params, field):
    response = client.get(URL, params)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and list(error["fields"]) == [field]


def test_one_order_in_full(make_strategy, account, client):
    strategy = make_strategy(account=account)
    order = order_make(
        strategy,
        "SELL",
        reason="STOPLOSS",
        order_type="SL-M",
        trigger_price=Decimal("1490.05"),
        protective=True,
        fill_price=Decimal("1489.9"),
    )

    response = client.get(f"{URL}{order.pk}/")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == order.pk
    assert (body["reason"], body["order_type"], body["trigger_price"], body["protective"]) == (
        "STOPLOSS",
        "SL-M",
        "1490.05",
        True,
    )
    assert body["average_price"] == "1489.90" and body["limit_price"] is None
    assert body["created_at"] and body["updated_at"] and body["filled_at"]


def test_another_users_order_is_a_404_like_one_that_does_not_exist(make_strategy, client):
    theirs = order_make(make_strategy(), "BUY")

    response = client.get(f"{URL}{theirs.pk}/")
    missing = client.get(f"{URL}{theirs.pk + 1000}/")

    assert response.status_code == missing.status_code == 404
    assert response.json() == missing.json()
    assert response.json()["error"]["code"] == "order_not_found"


def test_without_a_token_the_orders_are_a_401(make_strategy):
    order = order_make(make_strategy(), "BUY")

    assert APIClient().get(URL).status_code == 401
    assert APIClient().get(f"{URL}{order.pk}/").status_code == 401
