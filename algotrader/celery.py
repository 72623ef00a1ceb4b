"""The Celery application: configured from Django settings (``CELERY_*``), tasks
discovered in every app's ``tasks.py``, queues and routes from ``algotrader.queues``."""

import os
from typing import Any

from celery import Celery
from celery.signals import setup_logging, task_postrun, task_prerun
from kombu import Exchange, Queue

from algotrader.queues import DEFAULT_QUEUE, TASK_QUEUES, CeleryQueue, TaskName

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "algotrader.settings")

app = Celery("algotrader")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Each queue declares its own direct exchange and routing key, so a message's route is
# explicit (and shown truthfully in worker banners and Flower); tests/algotrader/
# test_celery_queues.py checks that each message lands in exactly one queue.
app.conf.task_queues = [Queue(queue.value, Exchange(queue.value), routing_key=queue.value) for queue in CeleryQueue]
app.conf.update(
    task_default_queue=DEFAULT_QUEUE.value,
    task_default_exchange=DEFAULT_QUEUE.value,
    task_default_routing_key=DEFAULT_QUEUE.value,
    # Celery 5.7 deprecates the task decorator's queue=: routes come from the one table.
    task_routes={name.value: {"queue": queue.value} for name, queue in TASK_QUEUES.items()},
)
app.autodiscover_tasks()


@setup_logging.connect
def use_django_logging(**kwargs: Any) -> None:
    """Keep Django's LOGGING (JSON lines, secrets redacted) in workers and beat."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


@task_prerun.connect
@task_postrun.connect
def close_old_database_connections(sender: Any = None, **kwargs: Any) -> None:
    """Each task is to the database what a request is to Django: only connections past
    CONN_MAX_AGE or broken are closed around it, where Celery's fixup would make a stop-loss
    open a new connection first. Eager runs are left alone: they run in the caller's transaction."""
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()


def task_send(
    name: TaskName, *, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None, **options: Any
) -> None:
    """Enqueue the task registered as ``name``, routed by the table, without importing its
    module: how a lower layer asks for a higher layer's work. Only what ``options`` says
    applies (the task decorator's ``expires`` is not known here): a caller that wants it
    passes it."""
    app.send_task(name.value, args=args, kwargs=kwargs, **options)
