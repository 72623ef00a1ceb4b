"""Creating and reading strategies over the API (U4): validation with field messages,
the market calendar, and ownership (another user's strategy is a 404 for every verb)."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from monitoring.models import EventLog
from strategies.models import Strategy
from tests.factories import BrokerAccountFactory, UserFactory

pytestmark = pytest.mark.django_db

IST = ZoneInfo("Asia/Kolkata")
MONDAY_10AM = datetime(2026, 11, 23, 10, 0, tzinfo=IST)
URL = "/api/v1/strategies/"


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


@pytest.fixture
def account():
    return BrokerAccountFactory()


@pytest.fixture
def owner_client(account):
    return client_for(account.owner)


@pytest.fixture(autouse=True)
def monday_morning():
    with time_machine.travel(MONDAY_10AM, tick=True):
        yield


def plan(account, **overrides):
    body = {
        "broker_account": account.pk,
        "exchange": "NSE",
        "symbol": "INFY",
        "quantity": 10,
        "buy_at": "10:30",
        "sell_at": "15:00",
        "stop_loss_percent": "2.5",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def test_a_valid_plan_is_created_and_records_u4(owner_client, account):
    response = owner_client.post(URL, plan(account), format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["status"], body["position"], body["venue"]) == ("CREATED", "NONE", "SIM")
    assert body["trade_date"] == "2026-11-23"
    assert body["buy_fire_at"] == "2026-11-23T10:30:00+05:30"
    strategy = Strategy.objects.get(pk=body["id"])
    assert EventLog.objects.filter(strategy=strategy, code="U4").count() == 1


def test_symbols_are_upper_cased_and_checked_against_the_instrument_list(owner_client, account):
    ok = owner_client.post(URL, plan(account, symbol="reliance"), format="json")
    unknown = owner_client.post(URL, plan(account, symbol="NOSUCHCO"), format="json")

    assert ok.status_code == 201
    assert ok.json()["symbol"] == "RELIANCE"
    assert unknown.status_code == 400
    assert "NOSUCHCO" in unknown.json()["error"]["fields"]["symbol"][0]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"sell_at": "10:30"}, "sell_at"),
        ({"sell_at": "10:30:59"}, "sell_at"),
        ({"buy_at": "11:00", "sell_at": "10:00"}, "sell_at"),
        ({"buy_at": "09:59", "trade_date": "2026-11-23"}, "buy_at"),
        ({"stop_loss_percent": None}, "stop_loss"),
        ({"stop_loss_price": "1400.00"}, "stop_loss"),
        ({"stop_loss_percent": "100"}, "stop_loss_percent"),
        ({"stop_loss_percent": "0"}, "stop_loss_percent"),
        ({"trade_date": "2026-11-20"}, "trade_date"),
        ({"quantity": 0}, "quantity"),
        ({"quantity": "ten"}, "quantity"),
        ({"buy_at": "25:00"}, "buy_at"),
        ({"exchange": "NYSE"}, "exchange"),
        ({"symbol": "IN FY"}, "symbol"),
        ({"symbol": "X" * 41}, "symbol"),
        ({"stop_loss_percent": "-1"}, "stop_loss_percent"),
        ({"stop_loss_price": "12345678901.5", "stop_loss_percent": None}, "stop_loss_price"),
        ({"broker_account": "abc"}, "broker_account"),
        ({"trade_date": "tomorrow"}, "trade_date"),
    ],
)
def test_bad_plans_are_400_with_a_field_message(owner_client, account, overrides, field):
    response = owner_client.post(URL, plan(account, **overrides), format="json")

    assert response.status_code == 400, response.json()
    assert response.json()["error"]["fields"][field]
    assert not Strategy.objects.exists()


def test_a_real_exchange_refuses_its_holidays_and_hours(kite_sim, sim_account, settings):
    # A Kite account on the real exchange's calendar; its instrument list comes from the simulator.
    settings.KITE_API_ROOT = kite_sim.api_root
    kite = BrokerAccountFactory(
        kite=True, api_key=sim_account.api_key, api_secret=sim_account.api_secret, access_token=sim_account.access_token
    )
    client = client_for(kite.owner)

    holiday = client.post(URL, plan(kite, trade_date="2026-11-24"), format="json")
    early = client.post(URL, plan(kite, buy_at="09:00", trade_date="2026-11-25"), format="json")
    late = client.post(URL, plan(kite, sell_at="15:45", trade_date="2026-11-25"), format="json")
    fine = client.post(URL, plan(kite, trade_date="2026-11-25"), format="json")

    assert holiday.status_code == 400
    assert "not a trading day" in holiday.json()["error"]["fields"]["trade_date"][0]
    assert early.json()["error"]["fields"]["buy_at"]
    assert late.json()["error"]["fields"]["sell_at"]
    assert fine.status_code == 201
    assert fine.json()["venue"] == "NSE"


def test_the_simulated_exchange_trades_on_a_sunday_night(account):
    with time_machine.travel(datetime(2026, 11, 29, 23, 0, tzinfo=IST), tick=True):
        response = client_for(account.owner).post(URL, plan(account, buy_at="23:10", sell_at="23:20"), format="json")

    assert response.status_code == 201
    assert response.json()["trade_date"] == "2026-11-29"


def test_an_omitted_date_is_the_first_day_the_buy_is_still_ahead(owner_client, account):
    later_today = owner_client.post(URL, plan(account), format="json")
    already_past = owner_client.post(URL, plan(account, buy_at="09:30"), format="json")

    assert later_today.json()["trade_date"] == "2026-11-23"
    assert already_past.json()["trade_date"] == "2026-11-24"


def test_an_account_that_cannot_trade_is_refused(account, owner_client):
    account.status = "token_expired"
    account.save()

    response = owner_client.post(URL, plan(account), format="json")

    assert response.status_code == 400
    assert "token_expired" in response.json()["error"]["fields"]["broker_account"][0]


def test_another_users_broker_account_is_not_found(owner_client):
    stranger = BrokerAccountFactory()

    response = owner_client.post(URL, plan(stranger), format="json")

    assert response.status_code == 404


def test_another_users_strategy_is_404_for_every_verb(owner_client, account):
    strategy_id = owner_client.post(URL, plan(account), format="json").json()["id"]
    intruder = client_for(UserFactory())
    base = f"{URL}{strategy_id}/"

    responses = [
        intruder.get(base),
        intruder.patch(base, {"quantity": 5}, format="json"),
        intruder.delete(base),
        intruder.post(f"{base}start/"),
        intruder.post(f"{base}stop/", {}, format="json"),
        intruder.get(f"{base}events/"),
    ]

    assert [r.status_code for r in responses] == [404] * 6
    assert intruder.get(URL).json()["results"] == []
    assert Strategy.objects.get(pk=strategy_id).quantity == 10


def test_list_shows_only_own_strategies_newest_first(owner_client, account):
    first = owner_client.post(URL, plan(account), format="json").json()["id"]
    second = owner_client.post(URL, plan(account, symbol="TCS"), format="json").json()["id"]
    client_for(UserFactory())  # another user with nothing

    body = owner_client.get(URL).json()

    assert [s["id"] for s in body["results"]] == [second, first]
    assert body["count"] == 2


def test_a_created_strategy_can_be_deleted_but_not_twice(owner_client, account):
    strategy_id = owner_client.post(URL, plan(account), format="json").json()["id"]

    assert owner_client.delete(f"{URL}{strategy_id}/").status_code == 204
    assert owner_client.delete(f"{URL}{strategy_id}/").status_code == 404


def test_stopping_a_strategy_that_never_started_is_409(owner_client, account):
    strategy_id = owner_client.post(URL, plan(account), format="json").json()["id"]

    response = owner_client.post(f"{URL}{strategy_id}/stop/", {}, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "strategy_not_running"


@pytest.mark.parametrize("given", ["10:30Z", "10:30-08:00", "10:30:00+05:30"])
def test_a_time_with_an_offset_is_refused_not_read_as_exchange_time(owner_client, account, given):
    created = owner_client.post(URL, plan(account, buy_at=given), format="json")

    assert created.status_code == 400
    assert "offset" in created.json()["error"]["fields"]["buy_at"][0]
    assert not Strategy.objects.exists()


def test_an_update_with_an_offset_is_refused(owner_client, account):
    strategy_id = owner_client.post(URL, plan(account), format="json").json()["id"]

    updated = owner_client.patch(f"{URL}{strategy_id}/", {"sell_at": "15:00Z"}, format="json")

    assert updated.status_code == 400
    assert "sell_at" in updated.json()["error"]["fields"]


@pytest.mark.parametrize("trade_date", ["9999-12-31", "2028-01-03"])
def test_a_trade_date_past_the_calendars_horizon_is_refused(owner_client, account, trade_date):
    response = owner_client.post(URL, plan(account, trade_date=trade_date), format="json")

    assert response.status_code == 400
    assert "days ahead" in response.json()["error"]["fields"]["trade_date"][0]


def test_the_protective_stop_is_on_by_default_and_can_be_switched_off_per_strategy(owner_client, account):
    default = owner_client.post(URL, plan(account), format="json").json()
    off = owner_client.post(URL, plan(account, protective_stop=False), format="json").json()

    assert (default["protective_stop"], off["protective_stop"]) == (True, False)
    assert Strategy.objects.get(pk=off["id"]).protective_stop is False
