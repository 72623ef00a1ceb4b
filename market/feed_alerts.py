"""The feed's L4 incidents. "Missing price feed": an instrument with armed stop-losses and no
tick in market hours is one incident for operators (opened and resolved once, whatever the
listener's restarts) and an L4 on the timeline of each owner of an armed strategy on it.
"Price feed over capacity": more instruments wanted than the feed accounts' connections carry."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, NamedTuple

from redis import Redis

from algotrader import redis_keys
from monitoring.events import Event
from monitoring.services import Emission, alert_raise, alert_resolve, emit_many
from strategies.models import Strategy

MISSING_PRICE_FEED = "missing_price_feed"
FEED_OVER_CAPACITY = "feed_over_capacity"
EXAMPLES = 20  # uncarried instruments named in the over-capacity alert's payload


class FeedAlert(NamedTuple):
    """What the listener found, for its main thread to record: the incident (kind, key), its
    message and payload (``state`` open or resolved), and the owners' L4s."""

    kind: str
    key: str
    text: str
    payload: dict[str, Any]
    to_owners: list[Emission]
    resolution: str


def stale_feed_alerts(
    redis: Redis, instruments: set[str], *, last_tick_at: dict[str, float], stale_seconds: float, cleared: bool
) -> list[FeedAlert]:
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
    alerts: list[FeedAlert] = []
    for instrument in ordered:
        last = last_tick_at.get(instrument)
        payload = {
            "alert": MISSING_PRICE_FEED,
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
        alerts.append(FeedAlert(MISSING_PRICE_FEED, instrument, text, payload, to_owners, "ticks flow again"))
    return alerts


def capacity_alert(*, uncarried: set[str], armed: set[str], wanted: int, capacity: int, cleared: bool) -> FeedAlert:
    """L4 for operators while some wanted instruments have no connection: the feed accounts'
    connections are full (armed stops are carried first, so those left out are mostly watched)."""
    uncarried_armed = len(uncarried & armed)
    payload = {
        "alert": FEED_OVER_CAPACITY,
        "state": "resolved" if cleared else "open",
        "uncarried": len(uncarried),
        "uncarried_armed": uncarried_armed,
        "wanted": wanted,
        "capacity": capacity,
        "examples": sorted(uncarried)[:EXAMPLES],
    }
    text = (
        f"Price feed carries every wanted instrument again ({wanted} of capacity {capacity})"
        if cleared
        else f"Price feed over capacity: {len(uncarried)} of {wanted} instruments wanted are not carried "
        f"({uncarried_armed} with armed stop-losses); the feed accounts carry {capacity} - add a feed account"
    )
    return FeedAlert(FEED_OVER_CAPACITY, "feed", text, payload, [], "capacity suffices again")


def feed_alert_record(alert: FeedAlert) -> None:
    """The incident is opened or resolved once, whatever the listener restarts in between;
    the owners hear of it only when it actually opens or resolves."""
    details = {key: value for key, value in alert.payload.items() if key not in ("alert", "state")}
    if alert.payload["state"] == "open":
        recorded = alert_raise(kind=alert.kind, key=alert.key, message=alert.text, payload=details)
    else:
        recorded = alert_resolve(kind=alert.kind, key=alert.key, resolution=alert.resolution, message=alert.text)
    if recorded is not None and alert.to_owners:
        emit_many([replace(e, payload={**e.payload, "alert_id": recorded.pk}) for e in alert.to_owners])
