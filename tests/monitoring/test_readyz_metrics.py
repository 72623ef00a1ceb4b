"""/readyz says whether the system can trade (database, Redis, beat, a live worker on each
queue, a fresh feed where stops wait on it), each check in the body; /metrics exposes the
counters of every process (multiprocess mode) and the runtime gauges, nothing sensitive."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.test import Client

from algotrader import redis_keys
from algotrader.redis_client import get_redis
from execution.services import strategy_buy_execute
from market.services import ticks_ingest
from market.ticks import BATCH_TYPE
from monitoring import heartbeats, metrics
from monitoring.events import Event
from monitoring.services import emit
from tests.execution.conftest import make_strategy, quick_execution
from tests.waiting import wait_until

__all__ = ["make_strategy", "quick_execution"]

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db


def all_heartbeats() -> None:
    heartbeats.heartbeat_stamp(name="beat")
    heartbeats.worker_heartbeat()  # this process stands in for a worker consuming every queue


def test_ready_when_every_check_passes():
    all_heartbeats()

    response = Client().get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {
        "database",
        "redis",
        "beat",
        "queue:orders",
        "queue:stoploss",
        "queue:scheduler",
        "queue:notifications",
    }
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["queue:orders"]["depth"] == 0


def test_not_ready_without_beat_and_says_which(settings):
    heartbeats.worker_heartbeat()
    get_redis().set(redis_keys.heartbeat("beat"), repr(time.time() - settings.READY_HEARTBEAT_MAX_AGE_SECONDS - 5))

    response = Client().get("/readyz")

    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["beat"]["ok"] is False and checks["beat"]["heartbeat_age_seconds"] > 30
    assert checks["queue:orders"]["ok"] is True


def test_not_ready_when_armed_stops_have_a_stale_feed():
    all_heartbeats()
    now = time.time()
    get_redis().hset(
        redis_keys.feed_status(),
        mapping={
            "updated_at": now,
            "connected": "1",
            "last_frame_at": now - 60,
            "subscribed": 1,
            "armed": 1,
            "stale": 1,
        },
    )

    response = Client().get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["market_feed"]["ok"] is False


def test_an_idle_system_expects_no_feed():
    all_heartbeats()

    assert "market_feed" not in Client().get("/readyz").json()["checks"]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_makes_its_queues_ready(tmp_path):
    heartbeats.heartbeat_stamp(name="beat")
    log = tmp_path / "worker.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "algotrader",
            "worker",
            "-Q",
            "stoploss",
            "-n",
            "readyz@%h",
            "--concurrency",
            "1",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "INFO",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until(
            lambda: Client().get("/readyz").json()["checks"]["queue:stoploss"]["ok"],
            timeout=90,
            interval=0.2,
            message=lambda: log.read_text(errors="replace")[-4000:],
        )
        checks = Client().get("/readyz").json()["checks"]
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)

    assert checks["queue:stoploss"]["ok"] is True
    assert checks["queue:orders"]["ok"] is False  # nobody consumes orders: not ready


def test_metrics_count_events_orders_broker_latency_and_tick_lag(make_strategy):
    strategy = make_strategy()
    emit(Event.U2_USER_LOGGED_IN, user=strategy.owner)
    strategy_buy_execute(strategy_id=strategy.pk)
    ticks_ingest(message={"type": BATCH_TYPE, "ticks": [["NSE:INFY", 1540.0, time.time()]], "received_at": time.time()})

    response = Client().get("/metrics")

    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert 'algotrader_events_total{code="U2"}' in text
    assert 'algotrader_orders_finalized_total{reason="BUY",status="COMPLETE"}' in text
    assert 'algotrader_broker_request_seconds_count{operation="place_order",outcome="ok"}' in text
    assert "algotrader_tick_lag_seconds_count" in text
    assert 'algotrader_queue_depth{queue="stoploss"} 0.0' in text
    assert "secret" not in text.lower() and "token" not in text.lower()


def test_metrics_add_up_the_counts_of_every_process(tmp_path, monkeypatch):
    counting = "import django; django.setup()\nfrom monitoring.metrics import EVENTS\nEVENTS.labels('X4').inc(3)\n"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "algotrader.settings"}
    for _ in range(2):  # two processes, as a worker and the listener would be
        subprocess.run([sys.executable, "-c", counting], cwd=ROOT, env=env, check=True, timeout=120)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    text = metrics.exposition().decode()

    assert 'algotrader_events_total{code="X4"} 6.0' in text
