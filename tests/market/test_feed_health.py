"""/healthz shows the price feed's freshness once something is subscribed, and calls
the system degraded only when armed stops lack prices; liveness stays 200."""

import time

import pytest
from django.test import Client

from algotrader import redis_keys
from algotrader.redis_client import get_redis

pytestmark = pytest.mark.django_db


def report(**fields: object) -> None:
    status = {"updated_at": time.time(), "connected": "1", "last_frame_at": time.time(), "subscribed": 1}
    get_redis().hset(redis_keys.feed_status(), mapping={k: str(v) for k, v in {**status, **fields}.items()})


def test_an_idle_system_shows_no_feed_and_is_ok():
    report(subscribed=0, armed=0, stale=0)

    response = Client().get("/healthz")

    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}


def test_a_fresh_feed_is_shown_and_ok():
    report(armed=1, stale=0)

    body = Client().get("/healthz").json()

    assert body["status"] == "ok"
    assert body["market_feed"]["healthy"] is True and body["market_feed"]["listener"] == "up"


def test_armed_stops_without_prices_degrade_but_keep_liveness():
    report(armed=1, stale=1)

    response = Client().get("/healthz")

    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["market_feed"]["stale"] == 1


def test_a_listener_gone_silent_with_armed_stops_is_reported():
    report(armed=1, stale=0, updated_at=time.time() - 60)

    feed = Client().get("/healthz").json()["market_feed"]

    assert feed["listener"] == "down" and feed["healthy"] is False
