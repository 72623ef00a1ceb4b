"""The Celery application: configured from Django settings (``CELERY_*``), tasks
discovered in every app's ``tasks.py``, queues from ``algotrader.queues``."""

import os
from typing import Any

from celery import Celery
from celery.signals import setup_logging
from kombu import Exchange, Queue

from algotrader.queues import CeleryQueue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "algotrader.settings")

app = Celery("algotrader")
app.config_from_object("django.conf:settings", namespace="CELERY")
# One direct exchange and routing key per queue: queues sharing a binding would each
# receive a copy of the same message (a stop-loss delivered twice).
app.conf.task_queues = [Queue(queue.value, Exchange(queue.value), routing_key=queue.value) for queue in CeleryQueue]
app.conf.update(task_default_exchange=CeleryQueue.ORDERS.value, task_default_routing_key=CeleryQueue.ORDERS.value)
app.autodiscover_tasks()


@setup_logging.connect
def use_django_logging(**kwargs: Any) -> None:
    """Keep Django's LOGGING (JSON lines, secrets redacted) in workers and beat."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)
