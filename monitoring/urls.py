from django.urls import path

from monitoring import api

urlpatterns = [
    path("healthz", api.healthz, name="healthz"),
    path("readyz", api.readyz, name="readyz"),
    path("metrics", api.metrics_view, name="metrics"),
]
