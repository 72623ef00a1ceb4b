"""Periodic broker housekeeping, thin over services."""

from celery import shared_task

from algotrader.queues import TaskName
from brokers.exceptions import BrokerUnavailable, RateLimited
from brokers.services import broker_accounts_expire_sessions, instruments_refresh


@shared_task(name=TaskName.EXPIRE_BROKER_SESSIONS.value, acks_late=True, expires=120, ignore_result=True)
def expire_broker_sessions_task() -> int:
    return broker_accounts_expire_sessions()


# A broker that stays down leaves yesterday's list searchable until the next morning's run, or
# an operator's `manage.py refresh_instruments`; the retries are the broker's passing errors only.
@shared_task(
    name=TaskName.REFRESH_INSTRUMENTS.value,
    acks_late=True,
    expires=3600,
    ignore_result=True,
    autoretry_for=(BrokerUnavailable, RateLimited),
    retry_backoff=30,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=5,
)
def refresh_instruments_task() -> dict[str, int]:
    return instruments_refresh()
