"""URL routes: the versioned API, its schema and docs, admin and health."""

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from algotrader.api.views import json_bad_request, json_not_found, json_server_error
from brokers.api import InstrumentSearchApi, KitePostbackApi

api_v1: list[URLPattern | URLResolver] = [
    path("auth/", include("algotrader.users.urls")),
    path("broker-accounts/", include("brokers.urls")),
    path("brokers/kite/postback/", KitePostbackApi.as_view(), name="kite-postback"),
    path("instruments/", InstrumentSearchApi.as_view(), name="instruments-search"),
    path("strategies/", include("strategies.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("admin/", admin.site.urls),
    path("", include("monitoring.urls")),
]

handler400 = json_bad_request
handler404 = json_not_found
handler500 = json_server_error
