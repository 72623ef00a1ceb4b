"""Per user, always: every operation of the schema that names an object by id answers another
user's id with 404, whatever the verb, and every list shows another user none of the first
one's objects. The operations come from the schema itself, so a new endpoint with an id is in
the matrix the day it is added (or this test fails until its object is here)."""

from typing import Any

import pytest
from django.urls import reverse
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from algotrader.users.models import RefreshTokenRecord, User
from algotrader.users.services import tokens_issue
from execution.models import Order
from execution.services import strategy_buy_execute
from tests.factories import BrokerAccountFactory, DeviceFactory, NotificationFactory, UserFactory

pytestmark = pytest.mark.django_db

# A body each operation could act on for its owner: the 404 must not hang on the body's shape.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("patch", "/api/v1/strategies/{strategy_id}/"): {"quantity": 2},
    ("post", "/api/v1/strategies/{strategy_id}/stop/"): {},
    ("post", "/api/v1/broker-accounts/{account_id}/session/"): {"request_token": "a-request-token"},
    ("put", "/api/v1/broker-accounts/{account_id}/risk-limits/"): {"max_open_positions": 1},
}


def operations_with_ids() -> list[tuple[str, str, list[str]]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    found = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
            if names:
                found.append((method, path, names))
    return found


def client_of(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_issue(user=user).access}")
    return client


@pytest.fixture
def owners_objects(make_strategy) -> dict[str, Any]:
    """One of every object a user owns, ids by the schema's parameter names."""
    kite = BrokerAccountFactory.create(kite=True)
    owner = kite.owner
    paper = BrokerAccountFactory.create(owner=owner)
    strategy = make_strategy(account=paper)
    strategy_buy_execute(strategy_id=strategy.pk)  # a filled BUY: an order and a position
    tokens_issue(user=owner)
    return {
        "owner": owner,
        "account_id": kite.pk,
        "strategy_id": strategy.pk,
        "order_id": Order.objects.get(strategy=strategy).pk,
        "notification_id": NotificationFactory.create(user=owner).pk,
        "device_id": DeviceFactory.create(user=owner).pk,
        "session_id": RefreshTokenRecord.objects.filter(user=owner).values_list("family", flat=True).first(),
    }


def test_every_operation_with_an_id_answers_another_users_id_with_404(owners_objects):
    intruder = client_of(UserFactory.create())
    seen = []

    for method, path, names in operations_with_ids():
        missing = [name for name in names if name not in owners_objects]
        assert not missing, f"{method.upper()} {path}: give this test an object for {missing}"
        url = path.format(**{name: owners_objects[name] for name in names})
        response = getattr(intruder, method)(url, BODIES.get((method, path), {}), format="json")
        seen.append((method.upper(), path, response.status_code))
        assert response.status_code == 404, (method.upper(), url, response.status_code, response.content)
        assert response.json()["error"]["code"].endswith("not_found"), response.content

    assert len(seen) >= 16, seen  # every one of today's operations with an id was tried


def count(body: Any) -> int:
    """A page's count, or a short list's length (a user's few broker accounts come whole)."""
    return len(body) if isinstance(body, list) else int(body["count"])


def test_another_users_lists_and_day_show_none_of_the_owners_objects(owners_objects):
    intruder = client_of(UserFactory.create())
    owner = client_of(owners_objects["owner"])
    lists = [
        "/api/v1/broker-accounts/",
        "/api/v1/strategies/",
        "/api/v1/orders/",
        "/api/v1/positions/",
        "/api/v1/notifications/",
    ]

    for url in lists:
        assert count(owner.get(url).json()) > 0, url  # the owner sees theirs...
        assert count(intruder.get(url).json()) == 0, url  # ...the intruder none of them
    sessions = intruder.get("/api/v1/auth/sessions/").json()["results"]
    assert str(owners_objects["session_id"]) not in {s["id"] for s in sessions}
    day = intruder.get(reverse("pnl-day")).json()
    assert day["open_positions"] == 0 and all(count == 0 for count in day["strategies"].values()), day
