"""Deleting an account: refused while a position is open, and says why; otherwise strategies
stop, broker credentials and the person's data go, and the order records stay."""

import pytest
from django.db import connection
from rest_framework.test import APIClient

from algotrader.users.models import RefreshTokenRecord, User
from brokers.models import BrokerAccount
from execution.models import Order
from execution.services.orders import order_create
from monitoring.models import EventLog
from strategies.models import Strategy
from tests.factories import BrokerAccountFactory

pytestmark = pytest.mark.django_db

LOGIN = "/api/v1/auth/login/"
REFRESH = "/api/v1/auth/refresh/"
ME = "/api/v1/auth/me/"
DELETE = "/api/v1/auth/account/delete/"


@pytest.fixture
def owner(user):
    return user


@pytest.fixture
def logged_in(api_client, owner, password):
    tokens = api_client.post(LOGIN, {"email": owner.email, "password": password}, format="json").json()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    return tokens


@pytest.fixture
def kite(owner) -> BrokerAccount:
    return BrokerAccountFactory.create(owner=owner, kite=True)


def test_refused_with_409_while_a_strategy_holds_shares(api_client, logged_in, owner, password, kite, make_strategy):
    holding = make_strategy(account=kite, position=Strategy.Position.BOUGHT)
    running = make_strategy(account=kite)

    response = api_client.post(DELETE, {"password": password}, format="json")

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "positions_open"
    assert "open position" in error["message"]
    assert error["strategies"] == [holding.pk]
    owner.refresh_from_db()
    kite.refresh_from_db()
    running.refresh_from_db()
    assert owner.is_active
    assert kite.api_secret
    assert running.status == Strategy.Status.RUNNING


def test_refused_while_an_order_is_live_at_the_broker(api_client, logged_in, password, kite, make_strategy):
    strategy = make_strategy(account=kite, status=Strategy.Status.STOPPED)
    order = order_create(strategy=strategy, reason=Order.Reason.SELL)
    Order.objects.filter(pk=order.pk).update(status=Order.Status.UNKNOWN)

    response = api_client.post(DELETE, {"password": password}, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["strategies"] == [strategy.pk]


def test_a_wrong_password_is_400_and_deletes_nothing(api_client, logged_in, owner):
    response = api_client.post(DELETE, {"password": "not my password"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"password": ["The password is wrong."]}
    owner.refresh_from_db()
    assert owner.is_active


@pytest.mark.parametrize("body", [{}, {"password": None}, {"password": ["x"]}, {"password": "x" * 129}])
def test_a_bad_body_is_400_on_password(api_client, logged_in, body):
    response = api_client.post(DELETE, body, format="json")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["password"]


def test_needs_a_login(api_client, password):
    assert api_client.post(DELETE, {"password": password}, format="json").status_code == 401


def test_deletes_the_person_and_keeps_the_orders(api_client, logged_in, owner, password, kite, make_strategy):
    running = make_strategy(account=kite)
    done = make_strategy(account=kite, status=Strategy.Status.EXITED, position=Strategy.Position.SOLD)
    order = order_create(strategy=done, reason=Order.Reason.BUY)
    Order.objects.filter(pk=order.pk).update(status=Order.Status.COMPLETE, broker_order_id="240101000000001")
    email = owner.email

    response = api_client.post(DELETE, {"password": password}, format="json")

    assert response.status_code == 204
    # Strategies stopped through the STOP service (its events recorded).
    running.refresh_from_db()
    assert running.status == Strategy.Status.STOPPED
    assert EventLog.objects.filter(strategy=running, code="S4").exists()
    # Broker credentials and the broker's id of the person erased.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT api_key, api_secret, access_token, broker_user_id, status FROM brokers_brokeraccount WHERE id = %s",
            [kite.pk],
        )
        assert cursor.fetchone() == ("", "", "", "", "disabled")
    # The order record kept, with its strategy and account, naming nobody.
    kept = Order.objects.select_related("strategy__owner", "account").get(pk=order.pk)
    assert (kept.status, kept.broker_order_id) == (Order.Status.COMPLETE, "240101000000001")
    assert kept.strategy.owner_id == owner.pk == kept.account.owner_id
    # The person gone from the user row, which is deactivated, with every token.
    owner.refresh_from_db()
    assert email not in owner.email
    assert owner.email == f"deleted-{owner.pk}@deleted"
    assert not owner.is_active
    assert not owner.has_usable_password()
    assert not RefreshTokenRecord.objects.filter(user=owner).exists()


def test_after_deletion_no_token_works_and_the_email_logs_in_nowhere(api_client, logged_in, owner, password):
    email = owner.email

    assert api_client.post(DELETE, {"password": password}, format="json").status_code == 204

    assert api_client.get(ME).status_code == 401
    assert api_client.post(REFRESH, {"refresh": logged_in["refresh"]}, format="json").status_code == 401
    fresh = APIClient()
    assert fresh.post(LOGIN, {"email": email, "password": password}, format="json").status_code == 401


def test_the_email_can_register_again_after_deletion(api_client, logged_in, owner, password):
    email = owner.email
    api_client.post(DELETE, {"password": password}, format="json")

    registered = APIClient().post("/api/v1/auth/register/", {"email": email, "password": password}, format="json")

    assert registered.status_code == 202
    assert User.objects.get(email=email).pk != owner.pk


def test_the_anonymous_address_cannot_be_registered(api_client, logged_in, owner, password):
    api_client.post(DELETE, {"password": password}, format="json")
    owner.refresh_from_db()

    registered = APIClient().post("/api/v1/auth/register/", {"email": owner.email, "password": password}, format="json")

    assert registered.status_code == 400
    assert list(registered.json()["error"]["fields"]) == ["email"]


def test_another_users_account_is_untouched(api_client, logged_in, password, make_strategy):
    theirs = make_strategy()

    assert api_client.post(DELETE, {"password": password}, format="json").status_code == 204

    theirs.refresh_from_db()
    assert theirs.status == Strategy.Status.RUNNING
    assert theirs.owner.is_active
    assert theirs.broker_account.status == BrokerAccount.Status.ACTIVE


def test_a_buy_delivered_after_deletion_places_nothing(api_client, logged_in, owner, password, make_strategy):
    from execution.services import strategy_buy_execute

    strategy = make_strategy(account=BrokerAccountFactory.create(owner=owner))  # RUNNING, its BUY due now
    assert api_client.post(DELETE, {"password": password}, format="json").status_code == 204

    placed = strategy_buy_execute(strategy_id=strategy.pk)

    assert placed is None
    assert not Order.objects.filter(strategy=strategy).exists()
