"""Broker account services and selectors: Kite session expiry, the expired-session path
(B2 + L4, once), who may enter, the Kite login session, deletion."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone

from brokers import services
from brokers.adapters.base import AccountProfile
from brokers.exceptions import BrokerAccountDisabled, BrokerAuthError
from brokers.models import BrokerAccount, PaperOrder
from brokers.selectors import broker_account_can_enter
from monitoring.models import EventLog
from tests.factories import BrokerAccountFactory

IST = ZoneInfo("Asia/Kolkata")


@pytest.mark.parametrize(
    ("logged_in", "expires"),
    [
        (datetime(2026, 11, 24, 10, 0, tzinfo=IST), datetime(2026, 11, 25, 6, 0, tzinfo=IST)),
        (datetime(2026, 11, 24, 23, 59, tzinfo=IST), datetime(2026, 11, 25, 6, 0, tzinfo=IST)),
        (datetime(2026, 11, 25, 3, 0, tzinfo=IST), datetime(2026, 11, 25, 6, 0, tzinfo=IST)),
        (datetime(2026, 11, 25, 6, 0, tzinfo=IST), datetime(2026, 11, 26, 6, 0, tzinfo=IST)),
    ],
)
def test_a_kite_session_expires_at_the_next_six_am_in_kolkata(logged_in, expires):
    expiry = services.kite_session_expiry(logged_in.astimezone(UTC))

    assert expiry == expires
    assert expiry.tzinfo is UTC


@pytest.mark.django_db
def test_marking_a_session_expired_blocks_entries_and_alerts_the_user_once():
    account = BrokerAccountFactory.create(kite=True)

    first = services.broker_account_mark_token_expired(account=account, reason="TokenException")
    again = services.broker_account_mark_token_expired(account=account, reason="TokenException")

    stored = BrokerAccount.objects.get(pk=account.pk)
    assert (first, again) == (True, False)
    assert stored.status == "token_expired"
    assert stored.access_token == ""
    assert not broker_account_can_enter(stored)
    codes = sorted(EventLog.objects.filter(user=account.owner).values_list("code", flat=True))
    assert codes == ["B2", "L4"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "expires_in", "can_enter"),
    [
        ("active", timedelta(hours=1), True),
        ("active", None, True),
        ("active", -timedelta(seconds=1), False),
        ("token_expired", timedelta(hours=1), False),
        ("login_required", None, False),
        ("disabled", None, False),
    ],
)
def test_new_entries_need_an_active_account_with_a_live_session(status, expires_in, can_enter):
    expires_at = timezone.now() + expires_in if expires_in is not None else None
    account = BrokerAccountFactory.create(status=status, token_expires_at=expires_at)

    assert broker_account_can_enter(account) is can_enter


class SessionAdapter:
    kind = "kite"

    def __init__(self, account):
        self.account = account

    def exchange_request_token(self, request_token, api_secret):
        if request_token != "good":
            raise BrokerAuthError("Token is invalid or has expired.", broker_error_type="TokenException")
        return "newaccesstoken"

    def validate_credentials(self):
        return AccountProfile(broker_user_id="AB1234", user_name="Trader")


@pytest.mark.django_db
def test_a_kite_session_is_active_until_six_the_next_morning(monkeypatch):
    monkeypatch.setattr("brokers.services.adapter_for", SessionAdapter)
    account = BrokerAccountFactory.create(kite=True, status="login_required", access_token="", token_expires_at=None)

    with time_machine.travel(datetime(2026, 11, 24, 9, 5, tzinfo=IST), tick=False):
        session = services.broker_account_create_session(account=account, request_token="good")

    stored = BrokerAccount.objects.get(pk=account.pk)
    assert stored.status == session.status == "active"
    assert stored.access_token == "newaccesstoken"
    assert stored.token_expires_at == datetime(2026, 11, 25, 6, 0, tzinfo=IST)
    assert stored.broker_user_id == "AB1234"
    assert EventLog.objects.filter(user=account.owner, code="B1").count() == 1


@pytest.mark.django_db
def test_a_refused_login_records_b2_and_leaves_the_account_as_it_was(monkeypatch):
    monkeypatch.setattr("brokers.services.adapter_for", SessionAdapter)
    account = BrokerAccountFactory.create(kite=True, status="token_expired", access_token="")

    with pytest.raises(BrokerAuthError, match="Token is invalid or has expired"):
        services.broker_account_create_session(account=account, request_token="stale")

    assert BrokerAccount.objects.get(pk=account.pk).status == "token_expired"
    assert EventLog.objects.get(user=account.owner, code="B2").payload["reason"] == "Token is invalid or has expired."


@pytest.mark.django_db
def test_a_disabled_account_cannot_start_a_session(monkeypatch):
    monkeypatch.setattr("brokers.services.adapter_for", SessionAdapter)
    account = BrokerAccountFactory.create(kite=True, status="disabled")

    with pytest.raises(BrokerAccountDisabled):
        services.broker_account_create_session(account=account, request_token="good")

    assert BrokerAccount.objects.get(pk=account.pk).status == "disabled"


@pytest.mark.django_db
def test_deleting_an_account_removes_its_paper_order_book():
    account = BrokerAccountFactory.create()
    PaperOrder.objects.create(
        account=account,
        tag="t1",
        exchange="NSE",
        symbol="INFY",
        side="BUY",
        order_type="MARKET",
        product="MIS",
        quantity=1,
        placed_at=timezone.now(),
    )

    services.broker_account_delete(account=account)

    assert not BrokerAccount.objects.exists()
    assert not PaperOrder.objects.exists()
