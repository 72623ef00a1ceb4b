"""Configuration that would make auth unsafe stops start-up."""

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from algotrader.users.apps import SIMPLEJWT_BLACKLIST, token_storage_check


def test_simplejwts_blacklist_app_which_keeps_tokens_in_clear_refuses_to_start():
    with pytest.raises(ImproperlyConfigured, match="token_blacklist"):
        token_storage_check([*settings.INSTALLED_APPS, SIMPLEJWT_BLACKLIST])


def test_the_configured_apps_pass_the_check():
    token_storage_check(settings.INSTALLED_APPS)
