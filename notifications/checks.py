"""A system check (run by `manage.py check` and `migrate`): a service account key that is set
must load, so a bad one stops a deploy rather than failing every push."""

from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from notifications import fcm


def fcm_service_account_loads(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if not fcm.push_enabled():
        return []
    try:
        fcm.service_account()
    except ImproperlyConfigured as error:
        return [checks.Error(str(error), id="notifications.E001")]
    return []


def register() -> None:
    checks.register(fcm_service_account_loads)
