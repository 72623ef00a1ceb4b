"""Notifications are recorded where the events they tell of are: an exit (S5) and a user's
L4 alert, each in the event's own transaction, kinds by what the alert is about; operators'
alerts and resolutions make none. With FCM configured, the push leaves after commit."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from algotrader.redis_client import get_redis
from brokers.services import broker_account_mark_token_expired
from monitoring.events import Event
from monitoring.services import alert_raise, alert_resolve, emit
from notifications.models import Notification
from strategies import scheduling
from strategies.models import Strategy
from strategies.services import strategy_exit
from tests.factories import BrokerAccountFactory, UserFactory
from tests.strategies.factories_scheduling import strategy_create

pytestmark = pytest.mark.django_db


def running_strategy() -> Strategy:
    now = timezone.now()
    return strategy_create(buy_fire_at=now + timedelta(minutes=1), sell_fire_at=now + timedelta(minutes=5))


def test_an_exit_is_a_notification_of_its_owner(django_capture_on_commit_callbacks):
    strategy = running_strategy()

    with django_capture_on_commit_callbacks(execute=True):
        strategy_exit(
            strategy_id=strategy.pk,
            reason=Strategy.ExitReason.STOPLOSS,
            position=Strategy.Position.EXITED_BY_SL,
            at=timezone.now(),
        )

    [notification] = Notification.objects.all()
    assert (notification.user_id, notification.kind, notification.strategy_id) == (
        strategy.owner_id,
        "exit",
        strategy.pk,
    )
    assert notification.title == "NSE:INFY: stop-loss exit"
    assert notification.read_at is None


def test_a_notification_commits_or_rolls_back_with_its_event():
    strategy = running_strategy()

    with pytest.raises(RuntimeError), transaction.atomic():
        emit(Event.S5_STRATEGY_EXITED, strategy=strategy, payload={"reason": "SELL"})
        raise RuntimeError("the exit's transaction fails")

    assert not Notification.objects.exists()


def test_an_expired_broker_token_is_a_token_expiry_notification_once():
    account = BrokerAccountFactory.create(kite=True)

    broker_account_mark_token_expired(account=account, reason="TokenException")
    broker_account_mark_token_expired(account=account, reason="TokenException")

    [notification] = Notification.objects.all()
    assert (notification.user_id, notification.kind, notification.title) == (
        account.owner_id,
        "token_expiry",
        "Broker login needed",
    )
    assert account.label in notification.body


def test_a_late_buy_is_a_readiness_notification_for_each_owner(settings):
    settings.BUY_GRACE_SECONDS = 30
    due = timezone.now().replace(microsecond=0) - timedelta(seconds=45)
    late = [strategy_create(buy_fire_at=due, sell_fire_at=due + timedelta(minutes=5)) for _ in range(2)]

    scheduling.fire_due(source="sweep")

    for strategy in late:
        kinds = sorted(Notification.objects.filter(user=strategy.owner).values_list("kind", flat=True))
        assert kinds == ["exit", "readiness"]  # the skipped BUY, and the strategy it ended


def test_a_users_alert_is_a_notification_and_its_resolution_none():
    user = UserFactory.create()

    alert_raise(kind="safety_abort", key="account:1", user=user, message="Trading on 'main' was stopped for safety")
    alert_resolve(kind="safety_abort", key="account:1", resolution="entries resumed")

    [notification] = Notification.objects.all()
    assert (notification.user_id, notification.kind, notification.body) == (
        user.pk,
        "alert",
        "Trading on 'main' was stopped for safety",
    )


def test_an_operators_alert_is_no_ones_notification():
    alert_raise(kind="task_failed", key="some.task", message="Task some_task failed")

    assert not Notification.objects.exists()


def test_other_events_make_no_notification():
    strategy = running_strategy()

    emit(Event.T1_BUY_TRIGGERED, strategy=strategy)
    emit(Event.E5_ORDER_FINALIZED, strategy=strategy)

    assert not Notification.objects.exists()


def test_with_fcm_configured_the_push_leaves_after_commit_on_its_own_queue(fcm, django_capture_on_commit_callbacks):
    strategy = running_strategy()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        emit(Event.S5_STRATEGY_EXITED, strategy=strategy, payload={"reason": "SELL", "symbol": "NSE:INFY"})
        assert get_redis().llen("notifications") == 0  # nothing leaves before commit
    for callback in callbacks:
        callback()

    assert get_redis().llen("notifications") == 1
    assert get_redis().llen("orders") == 0


def test_with_fcm_not_configured_nothing_is_enqueued(settings, django_capture_on_commit_callbacks):
    settings.FCM_SERVICE_ACCOUNT_KEY = ""
    strategy = running_strategy()

    with django_capture_on_commit_callbacks(execute=True):
        emit(Event.S5_STRATEGY_EXITED, strategy=strategy, payload={"reason": "SELL"})

    assert Notification.objects.count() == 1
    assert get_redis().llen("notifications") == 0
