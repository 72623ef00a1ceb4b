"""The ASGI application: HTTP (API, admin), the app's WebSocket, and the named
channels consumed by ``manage.py runworker`` (the tick consumer)."""

import os

from django.conf import settings
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "algotrader.settings")
if not settings.configured:
    # A server loading the application (not a test or runworker, whose settings are loaded
    # already): its request threads share a connection pool (DATABASE_POOL in settings).
    os.environ.setdefault("DATABASE_POOL", "true")

# Django must be set up before anything that imports models.
django_asgi_app = get_asgi_application()

from channels.routing import ChannelNameRouter, ProtocolTypeRouter, URLRouter  # noqa: E402

from algotrader.websocket_auth import BrowserOriginValidator, JWTAuthMiddleware  # noqa: E402
from market.routing import channel_routes, websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": BrowserOriginValidator(JWTAuthMiddleware(URLRouter(websocket_urlpatterns))),
        "channel": ChannelNameRouter(channel_routes),
    }
)
