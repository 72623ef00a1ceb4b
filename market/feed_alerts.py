"""L4 "missing price feed": an instrument with armed stop-losses and no tick in market
hours is one incident for operators (opened and resolved once, whatever the listener's
restarts) and an L4 on the timeline of each owner of an armed strategy on it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from redis import Redis

from algotrader import redis_keys
from monitoring.events import Event
from monitoring.services import Emission, alert_raise, alert_resolve, emit_many
from strategies.models import Strategy

# What the listener's health check found, for its main thread to record: the instrument,
# the message, the incident's payload and the owners' L4s.
StaleFeedAlert = tuple[str, str, dict[str, Any], list[Emission]]


def stale_feed_alerts(
    redis: Redis, instruments: set[str], *, last_tick_at: dict[str, float], stale_seconds: float, cleared: bool
) -> list[StaleFeedAlert]:
    """L4 once per incident and instrument: an alert for operators (no user) and an L4
    to each owner of an armed strategy on it; resolved when its ticks return."""
    pipe = redis.pipeline(transaction=False)
    ordered = sorted(instruments)
    for instrument in ordered:
        pipe.zrange(redis_keys.stop_losses(instrument), 0, -1)
    members_of = zip(ordered, pipe.execute(), strict=True)
    armed_by = {instrument: [int(member) for member in members] for instrument, members in members_of}
    owners = dict(
        Strategy.objects.filter(pk__in=[i for ids in armed_by.values() for i in ids]).values_list("pk", "owner_id")
    )
    alerts: list[StaleFeedAlert] = []
    for instrument in ordered:
        last = last_tick_at.get(instrument)
        payload = {
            "alert": "missing_price_feed",
            "state": "resolved" if cleared else "open",
            "instrument": instrument,
            "last_tick_at": datetime.fromtimestamp(last, UTC).isoformat() if last else None,
            "stale_seconds": stale_seconds,
        }
        text = (
            f"Price feed for {instrument} is back"
            if cleared
            else f"Missing price feed: no tick for {instrument} in {stale_seconds:g} s with stop-losses armed"
        )
        to_owners = [
            Emission(
                Event.L4_ALERT_TRIGGERED,
                user_id=owners[strategy_id],
                strategy_id=strategy_id,
                message=text,
                payload=payload,
            )
            for strategy_id in armed_by[instrument]
            if strategy_id in owners
        ]
        alerts.append((instrument, text, payload, to_owners))
    return alerts


def stale_feed_alert_record(instrument: str, text: str, payload: dict[str, Any], to_owners: list[Emission]) -> None:
    """The incident is the instrument's: opened or resolved once, whatever the listener
    restarts in between; the owners hear of it only when it actually opens or resolves."""
    details = {key: value for key, value in payload.items() if key not in ("alert", "state")}
    if payload["state"] == "open":
        alert = alert_raise(kind="missing_price_feed", key=instrument, message=text, payload=details)
    else:
        alert = alert_resolve(kind="missing_price_feed", key=instrument, resolution="ticks flow again", message=text)
    if alert is not None and to_owners:
        emit_many([replace(e, payload={**e.payload, "alert_id": alert.pk}) for e in to_owners])
