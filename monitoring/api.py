"""Health endpoints for load balancers and operators (no authentication, no secrets)."""

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from market.selectors import feed_health
from monitoring import health


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": health.database_ok(), "redis": health.redis_ok()}
    healthy = all(checks.values())
    body: dict[str, Any] = {"status": "ok" if healthy else "unavailable"}
    body.update({name: "ok" if ok else "unreachable" for name, ok in checks.items()})
    # The price feed is reported, not a liveness condition: restarting web cannot fix it.
    # Shown only when something is subscribed; "degraded" when armed stops lack prices.
    feed = feed_health() if checks["redis"] else None
    if feed is not None:
        body["market_feed"] = feed
        if healthy and not feed["healthy"]:
            body["status"] = "degraded"
    return JsonResponse(body, status=200 if healthy else 503)
