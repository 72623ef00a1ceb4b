"""Deleting a strategy that traded: its orders are a broker's record and keep it, so it is
hidden from its owner, not removed (removing it answered 500: the orders protect it)."""

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from execution.models import Order
from execution.services import strategy_buy_execute, strategy_sell_execute
from strategies.models import Strategy

pytestmark = pytest.mark.django_db


def test_a_strategy_that_traded_is_hidden_on_delete_and_its_orders_stay(make_strategy):
    strategy = make_strategy()
    strategy_buy_execute(strategy_id=strategy.pk)
    strategy_sell_execute(strategy_id=strategy.pk, reason="SELL")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(strategy.owner).access_token}")

    response = client.delete(f"/api/v1/strategies/{strategy.pk}/")

    assert response.status_code == 204
    assert client.get(f"/api/v1/strategies/{strategy.pk}/").status_code == 404
    assert client.get("/api/v1/strategies/").json()["count"] == 0
    assert Strategy.objects.get(pk=strategy.pk).deleted_at is not None
    assert Order.objects.filter(strategy=strategy).count() == 2
    assert client.get("/api/v1/orders/").json()["count"] == 2  # the broker's record, still the user's


def test_a_strategy_that_never_traded_is_removed(make_strategy):
    strategy = make_strategy()
    Strategy.objects.filter(pk=strategy.pk).update(status="STOPPED")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(strategy.owner).access_token}")

    assert client.delete(f"/api/v1/strategies/{strategy.pk}/").status_code == 204
    assert not Strategy.objects.filter(pk=strategy.pk).exists()
