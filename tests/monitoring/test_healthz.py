"""/healthz reports whether the database and Redis answer."""

import pytest
import redis
from django.test import Client

from monitoring import health

pytestmark = pytest.mark.django_db


def test_healthz_is_ok_when_database_and_redis_answer():
    response = Client().get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}


def test_healthz_is_503_when_redis_is_unreachable(monkeypatch):
    # A real client against a port where nothing listens: the edge we cannot break for real here.
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    monkeypatch.setattr(health, "get_redis", lambda: dead)

    response = Client().get("/healthz")

    assert response.status_code == 503
    assert response.json()["redis"] == "unreachable"
    assert response.json()["database"] == "ok"
