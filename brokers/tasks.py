"""Periodic broker housekeeping, thin over services."""

from celery import shared_task

from algotrader.queues import TaskName
from brokers.services import broker_accounts_expire_sessions


@shared_task(name=TaskName.EXPIRE_BROKER_SESSIONS.value, acks_late=True, expires=120, ignore_result=True)
def expire_broker_sessions_task() -> int:
    return broker_accounts_expire_sessions()
