"""Alerts (L4): one per incident, enforced by the database; an L4 on the timeline when
it opens and when it resolves; delivered to operators by email and webhook once per
incident and channel, retried only where it failed, the resolution announced too."""

import pytest
from django.core import mail
from django.db import IntegrityError, transaction

from monitoring.models import Alert, EventLog
from monitoring.services import alert_notify, alert_raise, alert_resolve, alerts_resolve
from monitoring.tasks import alert_notify_task, alerts_notify_pending_task
from tests.monitoring.webhook_server import webhook_receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def operators(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.ALERT_EMAILS = ["ops@example.com", "oncall@example.com"]
    with webhook_receiver() as receiver:
        settings.ALERT_WEBHOOK_URL = receiver.url
        yield receiver


def l4s() -> list[EventLog]:
    return list(EventLog.objects.filter(code="L4").order_by("id"))


def test_an_incident_raised_twice_opens_one_alert_and_one_l4(user):
    first = alert_raise(kind="broker_token_expired", key="account:1", user=user, message="Log in again")
    second = alert_raise(kind="broker_token_expired", key="account:1", user=user, message="Log in again")

    assert first is not None and second is None
    assert Alert.objects.count() == 1
    [event] = l4s()
    assert (event.user_id, event.payload["alert"], event.payload["state"]) == (user.pk, "broker_token_expired", "open")
    assert event.payload["alert_id"] == first.pk


def test_the_database_refuses_a_second_open_alert_for_an_incident():
    Alert.objects.create(kind="missing_price_feed", key="NSE:INFY", message="no ticks")

    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(kind="missing_price_feed", key="NSE:INFY", message="no ticks")


def test_alerts_resolve_closes_the_open_kinds_of_a_key_and_looks_once(user, django_assert_num_queries):
    failed = alert_raise(kind="exit_failed", key="strategy:3", user=user, message="exit failed")
    alert_raise(kind="exit_failed", key="strategy:4", user=user, message="another strategy's")
    assert failed is not None

    with django_assert_num_queries(1):  # none open: the one look for both kinds
        assert alerts_resolve(kinds=("exit_blocked",), key="strategy:3") == []
    resolved = alerts_resolve(kinds=("exit_failed", "exit_blocked"), key="strategy:3", resolution="closed")

    assert [alert.pk for alert in resolved] == [failed.pk]
    assert set(Alert.objects.filter(resolved_at__isnull=True).values_list("key", flat=True)) == {"strategy:4"}
    assert [(e.payload["state"], e.payload["alert_id"]) for e in l4s() if e.payload["key"] == "strategy:3"] == [
        ("open", failed.pk),
        ("resolved", failed.pk),
    ]


def test_a_resolved_incident_that_recurs_is_a_new_alert(user):
    first = alert_raise(kind="safety_abort", key="account:7", user=user, message="aborted")

    resolved = alert_resolve(kind="safety_abort", key="account:7", resolution="entries resumed")
    again = alert_resolve(kind="safety_abort", key="account:7")
    reopened = alert_raise(kind="safety_abort", key="account:7", user=user, message="aborted again")

    assert first is not None and resolved is not None and again is None and reopened is not None
    assert resolved.pk == first.pk and reopened.pk != first.pk
    assert [(e.payload["state"], e.payload["alert_id"]) for e in l4s()] == [
        ("open", first.pk),
        ("resolved", first.pk),
        ("open", reopened.pk),
    ]
    first.refresh_from_db()
    assert first.resolved_at is not None and first.resolution == "entries resumed"


def test_operators_get_one_email_and_one_webhook_per_incident_however_often_the_task_runs(operators):
    alert = alert_raise(kind="missing_price_feed", key="NSE:INFY", message="No tick for NSE:INFY in 10 s")
    assert alert is not None

    alert_notify_task.apply(args=(alert.pk,))
    alert_notify_task.apply(args=(alert.pk,))  # a redelivery, or the sweep

    [email] = mail.outbox
    assert email.to == ["ops@example.com", "oncall@example.com"]
    assert "missing_price_feed" in email.subject and "CRITICAL" in email.subject
    [hook] = operators.received
    assert set(hook) == {"text"} and "No tick for NSE:INFY" in hook["text"]
    alert.refresh_from_db()
    assert alert.notified_at is not None and set(alert.deliveries) == {"email:open", "webhook:open"}


def test_the_resolution_is_announced_once(operators):
    alert = alert_raise(kind="missing_price_feed", key="NSE:INFY", message="No tick for NSE:INFY")
    assert alert is not None
    alert_notify_task.apply(args=(alert.pk,))

    alert_resolve(kind="missing_price_feed", key="NSE:INFY", resolution="ticks flow again")
    alert_notify_task.apply(args=(alert.pk,))
    alert_notify_task.apply(args=(alert.pk,))

    assert len(mail.outbox) == 2 and "RESOLVED" in mail.outbox[1].subject
    assert [("RESOLVED" in hook["text"]) for hook in operators.received] == [False, True]
    assert "ticks flow again" in operators.received[1]["text"]


def test_a_failing_webhook_is_retried_alone_and_the_email_is_not_sent_twice(operators):
    operators.statuses = [503, 503]
    alert = alert_raise(kind="safety_abort", key="account:3", message="Trading stopped")
    assert alert is not None

    first = alert_notify(alert_id=alert.pk)
    second = alert_notify(alert_id=alert.pk)
    third = alert_notify(alert_id=alert.pk)

    assert [len(failures) for failures in (first, second, third)] == [1, 1, 0]
    assert all(not failure.permanent for failure in first + second)
    assert len(mail.outbox) == 1
    assert operators.attempts == 3 and len(operators.received) == 1
    alert.refresh_from_db()
    assert alert.notified_at is not None


def test_a_webhook_that_refuses_for_good_is_given_up_not_retried(operators):
    operators.statuses = [404]
    alert = alert_raise(kind="safety_abort", key="account:4", message="Trading stopped")
    assert alert is not None

    assert alert_notify(alert_id=alert.pk) == []
    assert alert_notify(alert_id=alert.pk) == []

    assert operators.attempts == 1
    alert.refresh_from_db()
    assert alert.deliveries["webhook:open"].startswith("failed")
    assert alert.notified_at is not None and len(mail.outbox) == 1


def test_the_task_retries_a_failed_webhook_without_resending_the_email(operators):
    operators.statuses = [502]
    alert = alert_raise(kind="safety_abort", key="account:5", message="Trading stopped")
    assert alert is not None

    # Eager: Celery runs the retry inline at once instead of after its backoff.
    result = alert_notify_task.apply(args=(alert.pk,))

    assert result.state == "SUCCESS"
    assert operators.attempts == 2 and len(operators.received) == 1
    assert len(mail.outbox) == 1


def test_the_sweep_enqueues_alerts_whose_delivery_is_pending(operators, time_machine):
    from datetime import timedelta

    from django.utils import timezone

    alert = alert_raise(kind="safety_abort", key="account:6", message="Trading stopped")
    assert alert is not None
    time_machine.move_to(timezone.now() + timedelta(minutes=2))

    assert alerts_notify_pending_task.apply().get() == 1


def test_no_channel_configured_marks_the_alert_notified(settings):
    settings.ALERT_EMAILS = []
    settings.ALERT_WEBHOOK_URL = ""
    alert = alert_raise(kind="safety_abort", key="account:8", message="Trading stopped")
    assert alert is not None

    assert alert_notify(alert_id=alert.pk) == []

    alert.refresh_from_db()
    assert alert.notified_at is not None and alert.deliveries == {}
