"""Orders made directly for the read-side tests (the order book, positions), and an API
client logged in as a user."""

from decimal import Decimal
from typing import Any

from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from execution.models import Order
from strategies.models import Strategy


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


def order_make(strategy: Strategy, side: str, *, quantity: int = 1, **fields: Any) -> Order:
    """A final order of the strategy, COMPLETE and filled in full at 1540.20 unless told."""
    fields.setdefault("reason", side)
    fields.setdefault("status", Order.Status.COMPLETE)
    fields.setdefault("fill_price", Decimal("1540.20"))
    fields.setdefault("filled_quantity", quantity if fields["fill_price"] is not None else 0)
    order = Order.objects.create(
        strategy=strategy,
        account=strategy.broker_account,
        side=side,
        quantity=quantity,
        broker_order_id=f"SIM{Order.objects.count() + 1:08d}",
        filled_at=timezone.now() if fields["filled_quantity"] else None,
        **fields,
    )
    order.tag = f"AT{order.pk}"
    order.save(update_fields=["tag"])
    return order
