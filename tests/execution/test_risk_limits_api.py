"""The risk limits over the API: the user's own and an account's, read (nulls before any is
set) and set whole; 400 per field for a negative, zero or malformed limit; 404 for another
user's account; and the limits set are what the engine then enforces."""

import pytest

from execution.models import RiskLimits
from execution.services import strategy_buy_execute
from tests.execution.api_helpers import client_for
from tests.factories import BrokerAccountFactory, UserFactory

pytestmark = pytest.mark.django_db

NO_LIMITS = {
    "max_loss_per_day": None,
    "max_open_positions": None,
    "max_order_value": None,
    "max_day_value": None,
    "max_orders_per_day": None,
}


def test_a_user_without_limits_reads_every_limit_as_null():
    user = UserFactory.create()

    response = client_for(user).get("/api/v1/risk-limits/")

    assert response.status_code == 200
    assert response.json() == {"broker_account": None, **NO_LIMITS, "updated_at": None}


def test_put_sets_the_users_limits_and_a_left_out_one_is_no_limit():
    user = UserFactory.create()
    client = client_for(user)
    client.put("/api/v1/risk-limits/", {"max_orders_per_day": 9, "max_day_value": "5"}, format="json")

    response = client.put(
        "/api/v1/risk-limits/", {"max_loss_per_day": "2500.5", "max_open_positions": 3}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    assert body["max_loss_per_day"] == "2500.50" and body["max_open_positions"] == 3
    assert body["max_orders_per_day"] is None and body["max_day_value"] is None
    assert client.get("/api/v1/risk-limits/").json() == body
    row = RiskLimits.objects.get(user=user)
    assert (row.account_id, row.max_open_positions, row.max_orders_per_day) == (None, 3, None)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_loss_per_day", "-1"),
        ("max_loss_per_day", "0"),
        ("max_open_positions", 0),
        ("max_order_value", "abc"),
        ("max_day_value", "1.001"),
        ("max_orders_per_day", -3),
        ("max_orders_per_day", 1.5),
    ],
)
def test_a_bad_limit_is_a_400_on_its_field(field, value):
    user = UserFactory.create()

    response = client_for(user).put("/api/v1/risk-limits/", {field: value}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and list(error["fields"]) == [field]
    assert not RiskLimits.objects.filter(user=user).exists()


def test_an_accounts_limits_are_its_own_and_the_users_stay_apart():
    account = BrokerAccountFactory.create()
    client = client_for(account.owner)
    url = f"/api/v1/broker-accounts/{account.pk}/risk-limits/"

    response = client.put(url, {"max_order_value": "10000"}, format="json")

    assert response.status_code == 200
    assert response.json()["broker_account"] == account.pk and response.json()["max_order_value"] == "10000.00"
    assert client.get(url).json() == response.json()
    assert client.get("/api/v1/risk-limits/").json()["max_order_value"] is None


def test_another_users_account_is_a_404_for_read_and_set():
    account = BrokerAccountFactory.create()
    intruder = client_for(UserFactory.create())
    url = f"/api/v1/broker-accounts/{account.pk}/risk-limits/"

    assert intruder.get(url).status_code == 404
    assert intruder.put(url, {"max_open_positions": 1}, format="json").status_code == 404
    assert not RiskLimits.objects.exists()


def test_a_limit_set_over_the_api_refuses_the_next_buy(make_strategy):
    held = make_strategy(position="BOUGHT")
    strategy = make_strategy(account=held.broker_account)
    url = f"/api/v1/broker-accounts/{strategy.broker_account_id}/risk-limits/"
    assert client_for(strategy.owner).put(url, {"max_open_positions": 1}, format="json").status_code == 200

    assert strategy_buy_execute(strategy_id=strategy.pk) is None

    strategy.refresh_from_db()
    assert (strategy.status, strategy.exit_reason) == ("EXITED", "REJECTED")
