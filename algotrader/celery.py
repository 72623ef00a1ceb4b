"""The Celery application: configured from Django settings (``CELERY_*``), tasks
discovered in every app's ``tasks.py``, queues from ``algotrader.queues``."""

import os
from typing import Any

from celery import Celery
from celery.signals import setup_logging
from kombu import Queue

from algotrader.queues import CeleryQueue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "algotrader.settings")

app = Celery("algotrader")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(queue.value) for queue in CeleryQueue]
app.autodiscover_tasks()


@setup_logging.connect
def use_django_logging(**kwargs: Any) -> None:
    """Keep Django's LOGGING (JSON lines, secrets redacted) in workers and beat."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)
