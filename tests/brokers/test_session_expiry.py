"""Kite sessions end every morning: the sweep flips ended sessions to token_expired,
tells the user once (B2 + L4), and new entries stop until the user logs in again."""

from datetime import timedelta

import pytest
from django.utils import timezone

from brokers.models import BrokerAccount
from brokers.selectors import broker_account_can_enter
from brokers.tasks import expire_broker_sessions_task
from monitoring.models import EventLog
from tests.factories import BrokerAccountFactory

pytestmark = pytest.mark.django_db


def test_an_ended_session_is_marked_expired_once_with_b2_and_an_alert():
    ended = BrokerAccountFactory.create(kite=True, token_expires_at=timezone.now() - timedelta(minutes=1))
    live = BrokerAccountFactory.create(kite=True)
    paper = BrokerAccountFactory.create()

    first = expire_broker_sessions_task()
    second = expire_broker_sessions_task()

    ended.refresh_from_db()
    assert (first, second) == (1, 0)
    assert ended.status == BrokerAccount.Status.TOKEN_EXPIRED
    assert ended.access_token == ""
    assert not broker_account_can_enter(ended)
    assert list(EventLog.objects.filter(user=ended.owner).values_list("code", flat=True).order_by("id")) == [
        "B2",
        "L4",
    ]
    assert BrokerAccount.objects.get(pk=live.pk).status == BrokerAccount.Status.ACTIVE
    assert BrokerAccount.objects.get(pk=paper.pk).status == BrokerAccount.Status.ACTIVE
