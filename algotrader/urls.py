"""URL routes: the versioned API, its schema and docs, admin and health."""

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from algotrader.api.views import json_bad_request, json_not_found, json_server_error
from brokers.api import InstrumentSearchApi, KiteLoginCallbackView, KitePostbackApi
from notifications.urls import device_urls, notification_urls

api_v1: list[URLPattern | URLResolver] = [
    path("auth/", include("algotrader.users.urls")),
    path("broker-accounts/", include("brokers.urls")),
    path("brokers/kite/postback/", KitePostbackApi.as_view(), name="kite-postback"),
    path("instruments/", InstrumentSearchApi.as_view(), name="instruments-search"),
    path("strategies/", include("strategies.urls")),
    path("", include("execution.urls")),
    path("notifications/", include(notification_urls)),
    path("devices/", include(device_urls)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("admin/", admin.site.urls),
    # Kite's login redirect: a browser page, outside the API (the redirect URL registered with Kite).
    path("kite/callback/", KiteLoginCallbackView.as_view(), name="kite-login-callback"),
    path("", include("monitoring.urls")),
]

handler400 = json_bad_request
handler404 = json_not_found
handler500 = json_server_error
