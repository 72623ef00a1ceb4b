"""Prometheus metrics: counted where things happen, in whichever process, plus queue depths and
feed age read from Redis at scrape time. Several processes count, so each writes its samples
under PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode) and ``/metrics`` adds them up."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector

from algotrader import redis_keys
from algotrader.queues import CeleryQueue
from algotrader.redis_client import get_redis

EVENTS = Counter("algotrader_events", "Events recorded by emit, by EVENT-MAP code", ["code"])
ORDERS = Counter(
    "algotrader_orders_finalized", "Orders that reached a final status, by status and reason", ["status", "reason"]
)
BROKER_LATENCY = Histogram(
    "algotrader_broker_request_seconds",
    "Broker API call latency, by operation and outcome",
    ["operation", "outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
TICK_LAG = Histogram(
    "algotrader_tick_lag_seconds",
    "From the listener receiving a frame to the tick consumer applying it",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
)

# The adapter calls worth timing; anything else passes through untouched.
TIMED_CALLS = frozenset({"place_order", "get_order", "orders_by_tag", "cancel_order", "positions", "last_price"})


class TimedAdapter:
    """A broker adapter whose calls are timed into BROKER_LATENCY (outcome ok, or the
    error's class name); everything else is the adapter's own."""

    def __init__(self, adapter: Any) -> None:
        self._adapter = adapter

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._adapter, name)
        if name not in TIMED_CALLS or not callable(attribute):
            return attribute
        return _timed(name, attribute)


def _timed(operation: str, call: Callable[..., Any]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        outcome = "ok"
        try:
            return call(*args, **kwargs)
        except Exception as error:
            outcome = type(error).__name__
            raise
        finally:
            BROKER_LATENCY.labels(operation, outcome).observe(time.perf_counter() - started)

    return timed


class RuntimeCollector(Collector):
    """Gauges read at scrape time: nothing to keep in step across processes."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily("algotrader_queue_depth", "Messages waiting in a Celery queue", labels=["queue"])
        frame_age = GaugeMetricFamily(
            "algotrader_feed_last_frame_age_seconds", "Seconds since the market listener last received a frame"
        )
        try:
            redis = get_redis()
            pipe = redis.pipeline(transaction=False)
            for queue in CeleryQueue:
                pipe.llen(queue.value)
            pipe.hget(redis_keys.feed_status(), "last_frame_at")
            *lengths, last_frame_at = pipe.execute()
        except Exception:
            return  # Redis down: /readyz says so; the counters still scrape
        for queue, length in zip(CeleryQueue, lengths, strict=True):
            depth.add_metric([queue.value], int(length))
        yield depth
        if last_frame_at and float(last_frame_at) > 0:
            frame_age.add_metric([], round(time.time() - float(last_frame_at), 3))
            yield frame_age


def exposition() -> bytes:
    """Every process's counters (multiprocess mode) or this one's, and the runtime gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    output = generate_latest(registry)
    runtime = CollectorRegistry()
    runtime.register(RuntimeCollector())
    return output + generate_latest(runtime)
