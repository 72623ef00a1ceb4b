from collections.abc import Iterable

from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models.signals import post_save

SIMPLEJWT_BLACKLIST = "rest_framework_simplejwt.token_blacklist"


def token_storage_check(installed_apps: Iterable[str]) -> None:
    """simplejwt's blacklist app keeps every live refresh token in clear, and its RefreshToken
    writes there once installed: rotation and revocation are ours (``RefreshTokenRecord``)."""
    if SIMPLEJWT_BLACKLIST in installed_apps:
        raise ImproperlyConfigured(f"remove {SIMPLEJWT_BLACKLIST!r} from INSTALLED_APPS: it stores tokens in clear")


class UsersConfig(AppConfig):
    name = "algotrader.users"
    label = "users"
    verbose_name = "Users"

    def ready(self) -> None:
        token_storage_check(settings.INSTALLED_APPS)
        from algotrader.users.models import User
        from algotrader.users.signals import user_deactivated_sockets_close

        # Models are importable only once apps are ready, hence here.
        post_save.connect(user_deactivated_sockets_close, sender=User, dispatch_uid="user_deactivated_sockets_close")
