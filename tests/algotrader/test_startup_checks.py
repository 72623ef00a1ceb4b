"""Configuration that would make auth unsafe stops start-up."""

import pytest
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings


def test_refresh_rotation_without_the_blacklist_app_refuses_to_start(settings):
    installed = [app for app in settings.INSTALLED_APPS if app != "rest_framework_simplejwt.token_blacklist"]

    with override_settings(INSTALLED_APPS=installed), pytest.raises(ImproperlyConfigured, match="token_blacklist"):
        apps.get_app_config("users").ready()


def test_rotation_without_blacklisting_refuses_to_start(settings):
    jwt = {**settings.SIMPLE_JWT, "BLACKLIST_AFTER_ROTATION": False}

    with override_settings(SIMPLE_JWT=jwt), pytest.raises(ImproperlyConfigured, match="BLACKLIST_AFTER_ROTATION"):
        apps.get_app_config("users").ready()
