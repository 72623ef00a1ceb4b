"""The Celery application: configured from Django settings (``CELERY_*``), tasks
discovered in every app's ``tasks.py``, queues from ``algotrader.queues``."""

import os
from typing import Any

from celery import Celery
from celery.signals import setup_logging, task_postrun, task_prerun, worker_ready
from kombu import Exchange, Queue

from algotrader.queues import CeleryQueue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "algotrader.settings")

app = Celery("algotrader")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Each queue declares its own direct exchange and routing key, so a message's route is
# explicit (and shown truthfully in worker banners and Flower); tests/algotrader/
# test_celery_queues.py checks that each message lands in exactly one queue.
app.conf.task_queues = [Queue(queue.value, Exchange(queue.value), routing_key=queue.value) for queue in CeleryQueue]
app.conf.update(task_default_exchange=CeleryQueue.ORDERS.value, task_default_routing_key=CeleryQueue.ORDERS.value)
# Routing lives here, in one table (Celery 5.7 deprecates the task decorator's queue=);
# every task not named goes to the default queue, orders.
app.conf.task_routes = {
    "execution.tasks.execute_stoploss_task": {"queue": CeleryQueue.STOPLOSS.value},
    "strategies.tasks.fire_slot_task": {"queue": CeleryQueue.SCHEDULER.value},
    "strategies.tasks.sweep_due_task": {"queue": CeleryQueue.SCHEDULER.value},
}
app.autodiscover_tasks()


@setup_logging.connect
def use_django_logging(**kwargs: Any) -> None:
    """Keep Django's LOGGING (JSON lines, secrets redacted) in workers and beat."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


@worker_ready.connect
def recover_on_worker_start(sender: Any = None, **kwargs: Any) -> None:
    """Recovery (X1, X4) at every worker start, then the watch for a Redis flush; on a
    thread of the worker's main process, so the worker consumes at once."""
    from monitoring.recovery import Trigger, recovery_watch_start

    queues = sorted(app.amqp.queues.consume_from) if app.amqp.queues.consume_from else []
    recovery_watch_start(
        trigger=Trigger.WORKER_START, detail={"worker": getattr(sender, "hostname", ""), "queues": queues}
    )


@task_prerun.connect
@task_postrun.connect
def close_old_database_connections(sender: Any = None, **kwargs: Any) -> None:
    """Each task is to the database what a request is to Django: before and after it, a
    connection past CONN_MAX_AGE or left unusable by an error is closed, and the next
    query health-checks the one kept. Celery's own fixup would instead close every
    connection around every task (CELERY_DB_REUSE_MAX makes it do so only now and then),
    so each stop-loss opened a new PostgreSQL connection before its first query. Eager
    runs (``apply``) are left alone, as the fixup leaves them: they run inside the
    caller's own transaction."""
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()
