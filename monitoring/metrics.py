"""Prometheus metrics counted where things happen (events by code, orders by outcome,
broker call latency). Every process writes them to PROMETHEUS_MULTIPROC_DIR when it is
set (``make run`` sets it), and ``/metrics`` adds them up across processes."""

from prometheus_client import Counter, Histogram

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
