from django.urls import path

from monitoring.consumers import UserEventsConsumer

websocket_urlpatterns = [
    path("ws/v1/events/", UserEventsConsumer.as_asgi()),
]
