from django.urls import path

from market.consumers import TickConsumer
from market.ticks import TICKS_CHANNEL
from market.user_socket import UserEventsConsumer

channel_routes = {TICKS_CHANNEL: TickConsumer.as_asgi()}

websocket_urlpatterns = [
    path("ws/v1/events/", UserEventsConsumer.as_asgi()),
]
