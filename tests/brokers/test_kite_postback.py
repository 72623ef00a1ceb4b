"""Kite's order updates proven by their checksum (``kite_order_update_verify``) and its HTTP
postbacks (``POST /api/v1/brokers/kite/postback/``): a forged one gets 403 and hands nothing on,
a malformed one 400 by field, a final one is handed to execution (``ORDER_UPDATE``), and the
simulator posts every order update to the app's postback URL as Kite does."""

import hashlib
from decimal import Decimal
from typing import Any

import pytest

from algotrader.queues import CeleryQueue, TaskName
from brokers.adapters.base import OrderRequest, Side
from brokers.adapters.registry import adapter_for
from brokers.kite_sim import KiteSimulator
from brokers.models import BrokerAccount
from brokers.services import kite_order_update_verify
from tests.brokers.kite_sim_fixtures import kite_sim, sim_account
from tests.factories import BrokerAccountFactory
from tests.strategies.scheduling_helpers import declare_queues, queued
from tests.waiting import wait_until

__all__ = ["kite_sim", "sim_account"]

pytestmark = pytest.mark.django_db

POSTBACK = "/api/v1/brokers/kite/postback/"


def signed(account: BrokerAccount, **changes: Any) -> dict[str, Any]:
    """A Kite postback of one of the account's orders, checksum made as Kite makes it."""
    payload = {
        "user_id": account.broker_user_id,
        "app_id": 1,
        "order_id": "250101000000001",
        "exchange_order_id": "1100000000000001",
        "status": "COMPLETE",
        "order_timestamp": "2026-12-07 10:15:02",
        "exchange": "NSE",
        "tradingsymbol": "INFY",
        "transaction_type": "SELL",
        "order_type": "MARKET",
        "quantity": 1,
        "filled_quantity": 1,
        "average_price": 1524.5,
        "tag": "AT1A",
        **changes,
    }
    text = f"{payload['order_id']}{payload['order_timestamp']}{account.api_secret}"
    payload["checksum"] = hashlib.sha256(text.encode()).hexdigest()
    return payload


def order_updates_queued() -> list[dict[str, Any]]:
    return [q.kwargs for q in queued(CeleryQueue.STOPLOSS) if q.task == TaskName.ORDER_UPDATE.value]


@pytest.fixture
def account() -> BrokerAccount:
    declare_queues()
    return BrokerAccountFactory.create(kite=True)


def test_an_update_signed_with_the_accounts_secret_is_verified(account):
    assert kite_order_update_verify(account=account, payload=signed(account))


def test_an_update_signed_with_another_secret_is_refused(account):
    other = BrokerAccountFactory.create(kite=True)
    assert not kite_order_update_verify(account=account, payload=signed(other))


def test_an_update_whose_order_was_changed_after_signing_is_refused(account):
    payload = {**signed(account), "order_timestamp": "2026-12-07 10:15:03"}
    assert not kite_order_update_verify(account=account, payload=payload)


def test_a_postback_with_a_bad_checksum_gets_403_and_hands_nothing_on(api_client, account):
    # given a postback for the account whose checksum does not match
    payload = {**signed(account), "checksum": "0" * 64}

    # when Kite (or anyone) posts it
    response = api_client.post(POSTBACK, payload, format="json")

    # then it is refused and nothing reaches execution
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "checksum_invalid"
    assert order_updates_queued() == []


def test_a_postback_for_an_unknown_user_gets_403(api_client, account):
    payload = signed(account, user_id="ZZ9999")
    assert api_client.post(POSTBACK, payload, format="json").status_code == 403
    assert order_updates_queued() == []


def test_a_malformed_postback_gets_400_naming_the_fields(api_client, account):
    payload = {key: value for key, value in signed(account).items() if key != "order_id"}
    payload["checksum"] = "not hex"

    response = api_client.post(POSTBACK, payload, format="json")

    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"order_id", "checksum"}
    assert order_updates_queued() == []


def test_a_final_postback_is_handed_to_execution_without_its_checksum(api_client, account):
    response = api_client.post(POSTBACK, signed(account), format="json")

    assert response.status_code == 200
    [update] = order_updates_queued()
    assert update["account_id"] == account.pk
    assert update["payload"]["order_id"] == "250101000000001" and update["payload"]["status"] == "COMPLETE"
    assert "checksum" not in update["payload"]


def test_duplicated_and_reordered_postbacks_are_all_received_and_only_final_ones_handed_on(api_client, account):
    # given Kite delivering COMPLETE twice, then a late OPEN of the same order
    deliveries = [signed(account), signed(account), signed(account, status="OPEN", filled_quantity=0)]

    # when they are posted
    statuses = [api_client.post(POSTBACK, payload, format="json").status_code for payload in deliveries]

    # then each gets 200 (Kite retries anything else), and only the final ones go on, where
    # applying is idempotent (tests/execution/test_kite_postback_apply.py)
    assert statuses == [200, 200, 200]
    assert [update["payload"]["status"] for update in order_updates_queued()] == ["COMPLETE", "COMPLETE"]


def test_the_account_is_told_apart_by_its_secret_when_a_kite_user_is_stored_twice(api_client, account):
    twin = BrokerAccountFactory.create(kite=True, broker_user_id=account.broker_user_id)

    assert api_client.post(POSTBACK, signed(twin), format="json").status_code == 200

    [update] = order_updates_queued()
    assert update["account_id"] == twin.pk


@pytest.mark.django_db(transaction=True)
def test_the_simulator_posts_order_updates_to_the_apps_postback_url(
    settings, live_server, kite_sim: KiteSimulator, sim_account
):
    # given a Kite app whose postback URL is ours, and its account stored with us
    declare_queues()
    settings.KITE_API_ROOT, settings.KITE_WS_ROOT = kite_sim.api_root, kite_sim.ws_root
    kite_sim.set_postback_url(sim_account.api_key, f"{live_server.url}{POSTBACK}")
    account = BrokerAccountFactory.create(
        kite=True,
        api_key=sim_account.api_key,
        api_secret=sim_account.api_secret,
        access_token=sim_account.access_token,
        broker_user_id=sim_account.user_id,
    )

    # when an order of the account fills
    broker_order_id = adapter_for(account).place_order(
        OrderRequest(exchange="NSE", symbol="INFY", side=Side.BUY, quantity=1, tag="ATPB1")
    )

    # then its final update reached us through the postback, verified, for that account
    def complete() -> dict[str, Any] | None:
        return next((u for u in order_updates_queued() if u["payload"]["order_id"] == broker_order_id), None)

    update = wait_until(complete)
    assert update["account_id"] == account.pk
    assert update["payload"]["status"] == "COMPLETE" and update["payload"]["tag"] == "ATPB1"
    assert Decimal(str(update["payload"]["average_price"])) > 0
