"""The algotrader project package: settings, Celery app, ASGI routing, URLs and users."""

from algotrader.celery import app as celery_app

__all__ = ["celery_app"]
