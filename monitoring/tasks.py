"""Alert delivery to operators, off the order path: a task per alert, retried while a channel
fails transiently, and a periodic sweep for deliveries never enqueued or out of retries; and
the alert for a task that crashed."""

from datetime import timedelta
from typing import Any

from celery import Task, shared_task
from celery.signals import task_failure
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from algotrader.queues import TaskName
from monitoring import heartbeats, services
from monitoring.models import Alert
from monitoring.transports import TransportError

PENDING_AFTER = timedelta(seconds=60)
PENDING_WITHIN = timedelta(days=1)


@shared_task(
    name=TaskName.ALERT_NOTIFY.value,
    acks_late=True,
    autoretry_for=(TransportError,),
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=settings.ALERT_DELIVERY_RETRIES,
)
def alert_notify_task(alert_id: int) -> None:
    failures = services.alert_notify(alert_id=alert_id)
    if failures:
        raise failures[0]


@shared_task(name=TaskName.BEAT_HEARTBEAT.value, acks_late=True, expires=settings.BEAT_HEARTBEAT_SECONDS)
def beat_heartbeat_task() -> None:
    heartbeats.heartbeat_stamp(name="beat")


@shared_task(name=TaskName.ALERTS_NOTIFY_PENDING.value, acks_late=True, expires=60)
def alerts_notify_pending_task() -> int:
    now = timezone.now()
    pending = Alert.objects.filter(
        Q(notified_at__isnull=True) | Q(resolved_at__isnull=False, resolve_notified_at__isnull=True),
        opened_at__gte=now - PENDING_WITHIN,
        opened_at__lte=now - PENDING_AFTER,
    ).values_list("pk", flat=True)
    ids = list(pending[:500])
    for alert_id in ids:
        alert_notify_task.delay(alert_id)
    return len(ids)


@task_failure.connect
def alert_failed_task(
    sender: Task[Any, Any] | None = None, exception: BaseException | None = None, args: Any = None, **_: Any
) -> None:
    name = getattr(sender, "name", "")
    if name == alert_notify_task.name:
        return  # a failing channel is retried by the sweep: alerting about it would loop
    services.task_failure_alert(task_name=name, args=list(args or ()), error=exception)
