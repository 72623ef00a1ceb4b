from django.urls import path

from monitoring import api

urlpatterns = [
    path("healthz", api.healthz, name="healthz"),
]
