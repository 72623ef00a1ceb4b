"""What the tick consumer does with a batch: apply it, enqueue a stop-loss task per triggered
strategy (a stop, a trailing stop or a target), then record M2 or P5 (and sparse M1s), then
follow the trailing stops raised (throttled, ``market.trailing``). Exits leave before any
database write; a trigger not yet enqueued waits in ``market:sl_fired`` for
``stoploss_enqueue_leftovers``."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from algotrader import redis_keys
from algotrader.celery import app, task_send
from algotrader.queues import TaskName, queue_for
from algotrader.redis_client import get_redis
from market.ticks import REASONS, STOPLOSS, TARGET, Ingested, Trigger, ingest
from market.trailing import TrailFollower
from monitoring.events import Event
from monitoring.metrics import TICK_LAG
from monitoring.services import Emission, emit_many
from strategies.models import Strategy

logger = logging.getLogger(__name__)

# A trigger older than this without its task enqueued was left by a consumer that died.
LEFTOVER_AFTER_SECONDS = 5.0
# The process's trailing stops, for a caller that keeps none of its own.
_TRAILS = TrailFollower()


def ticks_ingest(*, message: dict[str, Any], trails: TrailFollower | None = None) -> Ingested:
    """M1, M2 and P5 for one frame's batch; returns what was applied and triggered. ``trails``:
    the consumer's follower of trailing stops (P4, throttled)."""
    ticks = message.get("ticks") or []
    redis = get_redis()
    result = ingest(redis, ticks)
    trails = _TRAILS if trails is None else trails
    if result.triggers:
        stoploss_enqueue(triggers=result.triggers)
        enqueued_at = time.time()
        _record_stoploss_triggered(result.triggers, received_at=message.get("received_at"), enqueued_at=enqueued_at)
        trails.forget(trigger.strategy_id for trigger in result.triggers)
    try:
        trails.follow(result.moves)
    except Exception:  # the raised stops are in Redis already: only their record and the broker's copy wait
        logger.exception("trailing stops not followed")
    received_at = message.get("received_at")
    if received_at:  # after the stop-losses are on their way: they never wait for a metric
        TICK_LAG.observe(max(0.0, time.time() - float(received_at)))
    if result.ignored:
        logger.info("older ticks ignored", extra={"ignored": result.ignored})
    first = message.get("first")
    if first:
        _record_first_ticks(ticks, result.applied, set(first))
    return result


def stoploss_enqueue(*, triggers: Sequence[Trigger]) -> None:
    """One ``execute_stoploss_task`` per trigger, then the trigger is forgotten; a crash between
    the two enqueues it again, and the task is idempotent. A burst goes out as one kombu batch,
    so a frame's last exit does not wait behind the others' publishes."""
    with app.producer_or_acquire() as producer, producer.batch():
        for trigger in triggers:
            # By name: the consumer must not import the execution engine (nor wait for it to exist).
            kwargs = None if trigger.reason == STOPLOSS else {"reason": trigger.reason}
            task_send(TaskName.EXECUTE_STOPLOSS, args=(trigger.strategy_id,), kwargs=kwargs, producer=producer)
    get_redis().hdel(redis_keys.stoploss_fired(), *(str(trigger.strategy_id) for trigger in triggers))


def stoploss_publisher_warm() -> None:
    """Open the broker connection and declare the stop-loss queue now, so that the first
    stop-loss after a (re)start does not pay for them."""
    with app.producer_or_acquire() as producer:
        producer.maybe_declare(app.amqp.queues[queue_for(TaskName.EXECUTE_STOPLOSS).value])


def stoploss_enqueue_leftovers(*, older_than: float = LEFTOVER_AFTER_SECONDS) -> list[Trigger]:
    """Enqueue the triggers a dead consumer took out of ``sl:`` but never sent on."""
    redis = get_redis()
    leftovers = []
    for member, value in redis.hgetall(redis_keys.stoploss_fired()).items():
        instrument, price, ts, taken_at, *kind = str(value).split(" ")
        if time.time() - float(taken_at) >= older_than:
            reason = REASONS[kind[0]] if kind else STOPLOSS
            leftovers.append(Trigger(int(member), instrument, float(price), float(ts), reason))
    if leftovers:
        logger.warning("re-enqueueing stop-loss triggers left by a consumer", extra={"count": len(leftovers)})
        stoploss_enqueue(triggers=leftovers)
    return leftovers


def _record_stoploss_triggered(triggers: Sequence[Trigger], *, received_at: float | None, enqueued_at: float) -> None:
    ids = [trigger.strategy_id for trigger in triggers]
    owners = dict(Strategy.objects.filter(pk__in=ids).values_list("pk", "owner_id"))
    emissions = []
    for trigger in triggers:
        known = trigger.strategy_id in owners
        if not known:
            logger.warning("stop-loss triggered for an unknown strategy", extra={"strategy_id": trigger.strategy_id})
        target = trigger.reason == TARGET
        emissions.append(
            Emission(
                Event.P5_TARGET_REACHED if target else Event.M2_STOPLOSS_TRIGGERED,
                user_id=owners.get(trigger.strategy_id),
                strategy_id=trigger.strategy_id if known else None,
                message=f"{'Target reached' if target else 'Stop-loss triggered'}: "
                f"{trigger.instrument} traded at {trigger.price}",
                payload={
                    "strategy_id": trigger.strategy_id,
                    "instrument": trigger.instrument,
                    "price": str(trigger.price),  # the float's shortest repr: exact on a paise grid
                    "reason": trigger.reason,
                    "exchange_ts": trigger.exchange_ts,
                    "frame_received_at": received_at,  # the listener's clock when the frame arrived
                    "enqueued_at": enqueued_at,
                },
            )
        )
    emit_many(emissions)


def _record_first_ticks(ticks: list[Any], applied: list[bool], first: set[str]) -> None:
    """M1 is a fact of every tick; it is recorded for an instrument's first tick after a
    (re)subscription or a restored stream, and only counted (``market:tick_counts``) otherwise."""
    seen: dict[str, list[Any]] = {}
    for tick, ok in zip(ticks, applied, strict=True):
        if ok and tick[0] in first and tick[0] not in seen:
            seen[tick[0]] = tick
    emit_many(
        [
            Emission(
                Event.M1_PRICE_TICK,
                message=f"First tick of {instrument}: {price}",
                payload={"instrument": instrument, "price": str(float(price)), "exchange_ts": ts},
            )
            for instrument, (_, price, ts) in seen.items()
        ]
    )
