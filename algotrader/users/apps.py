from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class UsersConfig(AppConfig):
    name = "algotrader.users"
    label = "users"
    verbose_name = "Users"

    def ready(self) -> None:
        # Refresh rotation without the blacklist would leave every rotated-away
        # token usable until it expires: refuse to start rather than run like that.
        jwt = settings.SIMPLE_JWT
        blacklist_installed = "rest_framework_simplejwt.token_blacklist" in settings.INSTALLED_APPS
        if jwt.get("ROTATE_REFRESH_TOKENS") and not blacklist_installed:
            raise ImproperlyConfigured(
                "ROTATE_REFRESH_TOKENS needs 'rest_framework_simplejwt.token_blacklist' in INSTALLED_APPS"
            )
        if not jwt.get("BLACKLIST_AFTER_ROTATION"):
            raise ImproperlyConfigured("BLACKLIST_AFTER_ROTATION must be on when refresh tokens rotate")
