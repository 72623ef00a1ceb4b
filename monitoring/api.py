"""Health and metrics endpoints for load balancers, orchestrators and Prometheus: no
authentication, and nothing in them is sensitive (states, ages, counts, event codes)."""

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST

from monitoring import health, metrics


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": health.database_ok(), "redis": health.redis_ok()}
    healthy = all(checks.values())
    body: dict[str, Any] = {"status": "ok" if healthy else "unavailable"}
    body.update({name: "ok" if ok else "unreachable" for name, ok in checks.items()})
    # The price feed is reported, not a liveness condition: restarting web cannot fix it.
    # Shown only when something is subscribed; "degraded" when armed stops lack prices.
    for name, feed in (health.feeds() if checks["redis"] else {}).items():
        body[name] = feed
        if healthy and not feed["healthy"]:
            body["status"] = "degraded"
    return JsonResponse(body, status=200 if healthy else 503)


@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    """Can the system trade now: 200 when every check passes, else 503; each check's
    result in the body either way."""
    checks = health.readiness()
    ready = all(check["ok"] for check in checks.values())
    return JsonResponse({"status": "ready" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


@never_cache
@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(metrics.exposition(), content_type=CONTENT_TYPE_LATEST)
