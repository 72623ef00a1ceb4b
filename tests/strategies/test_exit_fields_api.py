"""The trailing stop and target fields over the API (U4, U5): created, read back, updated,
and bad values refused with a 400 naming each field; a held position's exits move at once."""

from decimal import Decimal

import pytest
from django.utils import timezone

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from strategies import services
from strategies.exit_index import targets_armed, trails_armed
from strategies.models import Strategy
from strategies.stoploss_index import stoploss_arm, stoploss_armed
from tests.strategies.test_strategy_api import URL, account, client_for, monday_morning, owner_client, plan

__all__ = ["account", "monday_morning", "owner_client"]

pytestmark = pytest.mark.django_db
INFY = "NSE:INFY"


def last_price(price: str) -> None:
    get_redis().hset(redis_keys.price("NSE", "INFY"), mapping={"price": price, "ts": "1.0"})


def test_a_plan_with_a_trailing_stop_and_a_target_is_created_and_read_back(owner_client, account):
    body = plan(account, stop_loss_trail_percent="1.5", take_profit_price="1600.00", stop_loss_price="1400.00")
    body.pop("stop_loss_percent")
    last_price("1500.0")

    created = owner_client.post(URL, body, format="json")

    assert created.status_code == 201, created.json()
    read = owner_client.get(f"{URL}{created.json()['id']}/").json()
    assert read["stop_loss_trail_percent"] == "1.50"
    assert read["take_profit_price"] == "1600.0000"
    assert read["stop_loss_trail_points"] is None and read["take_profit_percent"] is None
    assert read["target_price"] is None and read["trail_high_price"] is None  # fixed only at the fill


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"stop_loss_trail_percent": "-1"}, "stop_loss_trail_percent"),
        ({"stop_loss_trail_percent": "0"}, "stop_loss_trail_percent"),
        ({"stop_loss_trail_percent": "100"}, "stop_loss_trail_percent"),
        ({"stop_loss_trail_points": "0"}, "stop_loss_trail_points"),
        ({"stop_loss_trail_points": "-5"}, "stop_loss_trail_points"),
        ({"stop_loss_trail_percent": "1", "stop_loss_trail_points": "5"}, "stop_loss_trail"),
        ({"take_profit_percent": "0"}, "take_profit_percent"),
        ({"take_profit_percent": "-2"}, "take_profit_percent"),
        ({"take_profit_percent": "2", "take_profit_price": "1600"}, "take_profit"),
        ({"take_profit_price": "1500.00"}, "take_profit_price"),  # at the last price
        ({"take_profit_price": "1450.00"}, "take_profit_price"),  # below it
        ({"stop_loss_percent": None, "stop_loss_price": "1500.00"}, "stop_loss_price"),  # at the last price
        ({"stop_loss_percent": None, "stop_loss_price": "1550.00"}, "stop_loss_price"),  # above it
    ],
)
def test_bad_exit_values_are_400_with_a_field_message(owner_client, account, overrides, field):
    last_price("1500.0")

    response = owner_client.post(URL, plan(account, **overrides), format="json")

    assert response.status_code == 400, response.json()
    assert response.json()["error"]["fields"][field]
    assert not Strategy.objects.exists()


def test_without_a_last_price_a_target_must_still_lie_above_the_stop(owner_client, account):
    body = plan(account, stop_loss_percent=None, stop_loss_price="1400.00", take_profit_price="1390.00")

    response = owner_client.post(URL, body, format="json")

    assert response.status_code == 400, response.json()
    assert response.json()["error"]["fields"]["take_profit_price"]


def test_an_update_sets_one_kind_of_trail_and_target_in_place_of_the_other(owner_client, account):
    created = owner_client.post(
        URL, plan(account, stop_loss_trail_percent="2", take_profit_percent="3"), format="json"
    ).json()

    response = owner_client.patch(
        f"{URL}{created['id']}/", {"stop_loss_trail_points": "12.5", "take_profit_price": "1700"}, format="json"
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["stop_loss_trail_points"] == "12.5000" and body["stop_loss_trail_percent"] is None
    assert body["take_profit_price"] == "1700.0000" and body["take_profit_percent"] is None


def test_a_bad_update_is_400_and_changes_nothing(owner_client, account):
    created = owner_client.post(URL, plan(account, stop_loss_trail_percent="2"), format="json").json()

    response = owner_client.patch(f"{URL}{created['id']}/", {"stop_loss_trail_percent": "150"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"]["stop_loss_trail_percent"]
    assert Strategy.objects.get(pk=created["id"]).stop_loss_trail_percent == Decimal("2")


def test_updating_a_held_positions_target_and_trail_rearms_them(account):
    client = client_for(account.owner)
    created = client.post(URL, plan(account), format="json").json()
    services.strategy_start(user=account.owner, strategy_id=created["id"])
    Strategy.objects.filter(pk=created["id"]).update(
        buy_fired_at=timezone.now(), position="BOUGHT", entry_price="1500.00", stop_trigger_price="1462.50"
    )
    stoploss_arm(strategy_id=created["id"], instrument=INFY, trigger_price=Decimal("1462.50"))

    response = client.patch(
        f"{URL}{created['id']}/", {"take_profit_percent": "4", "stop_loss_trail_points": "20"}, format="json"
    )

    assert response.status_code == 200, response.json()
    assert response.json()["target_price"] == "1560.0000"  # 4% above the fill
    assert response.json()["stop_trigger_price"] == "1480.0000"  # the trail's, 20 below the fill, is higher
    assert targets_armed(instrument=INFY) == {created["id"]: Decimal("1560.0")}
    assert trails_armed(instrument=INFY) == {created["id"]: (Decimal("1500.0"), "a|20.0000|0")}
    assert stoploss_armed(instrument=INFY) == {created["id"]: Decimal("1480.0")}


def test_a_price_that_moved_past_the_stop_does_not_refuse_an_unrelated_change(owner_client, account):
    last_price("1500.0")
    body = plan(account, stop_loss_percent=None, stop_loss_price="1450.00", take_profit_price="1600.00")
    created = owner_client.post(URL, body, format="json").json()
    last_price("1440.0")  # below the stop now

    response = owner_client.patch(f"{URL}{created['id']}/", {"sell_at": "15:10"}, format="json")

    assert response.status_code == 200, response.json()


def test_a_stop_moved_above_the_last_price_is_refused(owner_client, account):
    created = owner_client.post(URL, plan(account), format="json").json()
    last_price("1500.0")

    response = owner_client.patch(f"{URL}{created['id']}/", {"stop_loss_price": "1510.00"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"]["stop_loss_price"]
