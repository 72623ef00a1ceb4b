"""Pushes to phones, on the notifications queue (never an order worker's): one task per
notification, retried with backoff while FCM answers 429 or 5xx, and a minutely sweep for
pushes never enqueued or out of retries."""

from typing import Any

from celery import Task, shared_task
from django.conf import settings

from algotrader.queues import TaskName
from notifications import push


@shared_task(bind=True, name=TaskName.NOTIFICATION_PUSH.value, acks_late=True, max_retries=settings.FCM_PUSH_RETRIES)
def notification_push_task(self: Task[Any, Any], notification_id: int) -> None:
    failures = push.notification_push(notification_id=notification_id)
    if failures:
        countdown = push.retry_countdown(retries=self.request.retries, failures=failures)
        raise self.retry(exc=failures[0], countdown=countdown)


@shared_task(name=TaskName.NOTIFICATIONS_PUSH_PENDING.value, acks_late=True, expires=60)
def notifications_push_pending_task() -> int:
    ids = push.notifications_push_pending()
    for notification_id in ids:
        notification_push_task.delay(notification_id)
    return len(ids)
