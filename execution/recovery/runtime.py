"""X1: ``strategy:{id}``, ``symbol:{instrument}:strategies`` and ``sl:{instrument}`` rebuilt from the committed
database, never moving a copy back past what raced the rebuild (its ``version``); execution locks are never
touched (a live worker's is its own). And the sentinel that shows whether Redis still holds what it wrote."""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis
from django.db.models import Max
from django.utils import timezone

from algotrader import redis_keys
from algotrader.celery import app
from algotrader.redis_client import get_redis
from monitoring.events import Event
from monitoring.models import EventLog
from strategies.exit_index import exits_arm_held
from strategies.models import Strategy
from strategies.runtime import runtime_fields

logger = logging.getLogger(__name__)

Status = Strategy.Status
Position = Strategy.Position

BATCH = 1000  # strategies per query and per pipeline
# A position past BOUGHT never goes back to it: a stop armed for one is always stale.
_PAST_BOUGHT = (Position.EXITING, Position.SOLD, Position.EXITED_BY_SL)
# A stop (M2) or a target (P5) taken out of its index: either is the position's exit.
_FIRED_CODES = (Event.M2_STOPLOSS_TRIGGERED.code, Event.P5_TARGET_REACHED.code)
_RUNTIME_COLUMNS = (
    "id",
    "owner_id",
    "status",
    "position",
    "exchange",
    "symbol",
    "quantity",
    "stop_loss_price",
    "stop_loss_percent",
    "stop_trigger_price",
    "entry_price",
    "stop_loss_trail_percent",
    "stop_loss_trail_points",
    "target_price",
    "trail_high_price",
    "buy_fire_at",
    "sell_fire_at",
    "version",
)

# Write the runtime copy (ARGV[1]: its fields as one JSON object) unless Redis holds a newer version, written
# by the execution engine after our read of the database: a rebuild never moves a copy back.
_WRITE_RUNTIME = """
local fields = cjson.decode(ARGV[1])
local current = redis.call('HGET', KEYS[1], 'version')
if current and tonumber(current) > tonumber(fields['version']) then
  return 0
end
local flat = {}
for name, value in pairs(fields) do
  flat[#flat + 1] = name
  flat[#flat + 1] = value
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(flat))
return 1
"""


@dataclass
class RuntimeLoaded:
    """X1: what the rebuild wrote."""

    strategies: int = 0
    instruments: int = 0
    stops_armed: int = 0
    stale_removed: int = 0
    rewritten: int = 0
    seconds: float = 0.0


def queues_declare() -> None:
    """The Celery queues' bindings live in Redis too: after a flush a message published to
    ``orders`` or ``stoploss`` would be dropped as unroutable until someone declares them
    again (a worker does so only when it starts)."""
    with app.connection_for_write() as conn:
        for queue in app.conf.task_queues:
            queue(conn.default_channel).declare()


def runtime_rebuild(*, batch_size: int = BATCH) -> RuntimeLoaded:
    """Make ``strategy:{id}``, ``symbol:{instrument}:strategies`` and ``sl:{instrument}``
    match the database: every running strategy loaded, the stop of every held position
    armed at its ``stop_trigger_price``, entries of strategies no longer running removed."""
    started = time.monotonic()
    client = get_redis()
    writer = client.register_script(_WRITE_RUNTIME)
    loaded = RuntimeLoaded()
    written: dict[int, int] = {}  # strategy id -> the version written
    instruments: set[str] = set()
    last_id = 0
    while True:
        batch = list(_running().filter(pk__gt=last_id).order_by("pk")[:batch_size])
        if not batch:
            break
        last_id = batch[-1].pk
        loaded.stops_armed += _write(client, writer, batch, instruments)
        written.update((strategy.pk, strategy.version) for strategy in batch)
    loaded.strategies = len(written)
    removed = _remove_stale(client, running=set(written), instruments=instruments)
    loaded.stale_removed = len(removed)
    loaded.rewritten = _rewrite_moved(client, writer, {**removed, **written}, instruments)
    _announce(client, instruments)
    loaded.instruments = len(instruments)
    loaded.seconds = round(time.monotonic() - started, 3)
    return loaded


def _running() -> Any:
    return Strategy.objects.filter(status=Status.RUNNING).only(*_RUNTIME_COLUMNS)


def stops_fired(strategy_ids: Iterable[int]) -> dict[int, datetime]:
    """Held positions whose stop has fired (M2 recorded), with when it last did. A fired
    stop is not armed again: its stop-loss task, queued or lost, is what exits it."""
    ids = list(strategy_ids)
    if not ids:
        return {}
    rows = (
        EventLog.objects.filter(code__in=_FIRED_CODES, strategy_id__in=ids)
        .order_by()
        .values("strategy_id")
        .annotate(last=Max("created_at"))
        .values_list("strategy_id", "last")
    )
    return {strategy_id: last for strategy_id, last in rows if strategy_id is not None}


def stops_fired_before(before: datetime, *, limit: int) -> list[int]:
    """Held positions whose stop (or target) fired before ``before`` and are still held: their
    stop-loss task was lost (an intraday position's stop fired within the last day)."""
    return list(
        EventLog.objects.filter(
            code__in=_FIRED_CODES,
            created_at__gte=before - timedelta(days=1),
            strategy__status=Status.RUNNING,
            strategy__position=Position.BOUGHT,
        )
        .order_by()
        .values("strategy_id")
        .annotate(last=Max("created_at"))
        .filter(last__lt=before)
        .order_by("strategy_id")
        .values_list("strategy_id", flat=True)[:limit]
    )


def targets_fired(strategy_ids: Iterable[int]) -> set[int]:
    """Of ``strategy_ids``, those whose exit was a target reached (P5): exited as TARGET."""
    return set(
        EventLog.objects.filter(code=Event.P5_TARGET_REACHED.code, strategy_id__in=list(strategy_ids)).values_list(
            "strategy_id", flat=True
        )
    )


def _write(client: redis.Redis, writer: Any, strategies: Iterable[Strategy], instruments: set[str]) -> int:
    """Load running strategies; returns the stops armed."""
    strategies = list(strategies)
    fired = stops_fired(s.pk for s in strategies if s.position == Position.BOUGHT)
    pipe = client.pipeline(transaction=False)
    members: dict[str, list[int]] = defaultdict(list)
    stops: dict[str, dict[str, float]] = defaultdict(dict)
    for strategy in strategies:
        instrument = redis_keys.instrument(strategy.exchange, strategy.symbol)
        writer(keys=[redis_keys.strategy(strategy.pk)], args=[json.dumps(runtime_fields(strategy))], client=pipe)
        members[instrument].append(strategy.pk)
        if strategy.position == Position.BOUGHT and strategy.stop_trigger_price and strategy.pk not in fired:
            # As ``strategies.stoploss_index.stoploss_arm`` scores it: the trigger as a double.
            stops[instrument][str(strategy.pk)] = float(strategy.stop_trigger_price)
            if strategy.entry_price is not None:  # the target and the trail from their recorded high and stop
                exits_arm_held(strategy, pipe=pipe)
    for instrument, ids in members.items():
        pipe.sadd(redis_keys.symbol_strategies(instrument), *ids)
    for instrument, mapping in stops.items():
        pipe.zadd(redis_keys.stop_losses(instrument), mapping)
    pipe.execute()
    instruments.update(members)
    return sum(len(mapping) for mapping in stops.values())


def _remove_stale(client: redis.Redis, *, running: set[int], instruments: set[str]) -> dict[int, int]:
    """Entries of strategies that are not running (a clear lost to a crash). Only those the
    database holds as not RUNNING go; returns their ids with the version seen, so that one
    started meanwhile is written back by ``_rewrite_moved``."""
    places: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for key in client.scan_iter(match=redis_keys.STRATEGY_PATTERN, count=1000):
        strategy_id = _id(key[len("strategy:") :])
        if strategy_id is not None and strategy_id not in running:
            places[strategy_id].append(("hash", key))
    sets = list(client.scan_iter(match=redis_keys.SYMBOL_STRATEGIES_PATTERN, count=1000))
    stop_sets = list(client.scan_iter(match=redis_keys.STOP_LOSSES_PATTERN, count=1000))
    pipe = client.pipeline(transaction=False)
    for key in sets:
        pipe.smembers(key)
    for key in stop_sets:
        pipe.zrange(key, 0, -1)
    contents = pipe.execute()
    for kind, key, members in [("set", k, m) for k, m in zip(sets, contents[: len(sets)], strict=True)] + [
        ("sl", k, m) for k, m in zip(stop_sets, contents[len(sets) :], strict=True)
    ]:
        for member in members:
            strategy_id = _id(member)
            if strategy_id is not None and strategy_id not in running:
                places[strategy_id].append((kind, key))
    if not places:
        return {}
    # The status now, not at our first read: one started since is kept. An id the database
    # does not know is left alone: nothing can vouch for what it is.
    known = {
        pk: (status, version)
        for pk, status, version in Strategy.objects.filter(pk__in=list(places))
        .order_by()
        .values_list("pk", "status", "version")
    }
    removed: dict[int, int] = {}
    pipe = client.pipeline(transaction=False)
    for strategy_id, where in places.items():
        if strategy_id not in known or known[strategy_id][0] == Status.RUNNING:
            continue
        removed[strategy_id] = known[strategy_id][1]
        for kind, key in where:
            if kind == "hash":
                pipe.delete(key)
            elif kind == "set":
                pipe.srem(key, str(strategy_id))
                instruments.add(redis_keys.instrument_of_key(key))
            else:
                pipe.zrem(key, str(strategy_id))
    pipe.execute()
    if removed:
        logger.warning("stale runtime entries removed", extra={"strategies": sorted(removed)[:50]})
    return removed


def _rewrite_moved(client: redis.Redis, writer: Any, seen: dict[int, int], instruments: set[str]) -> int:
    """Whatever moved while the rebuild ran (a STOP, an exit, a START) is written again
    from its state now, which the actor that moved it is also writing: both converge.
    Strategies started meanwhile are included; their START loaded them as well."""
    now_running = dict(Strategy.objects.filter(status=Status.RUNNING).order_by().values_list("pk", "version"))
    moved = {pk for pk, version in seen.items() if now_running.get(pk) != version}
    moved |= set(now_running) - set(seen)
    if not moved:
        return 0
    ids = sorted(moved)
    rows = {s.pk: s for s in Strategy.objects.filter(pk__in=ids).only(*_RUNTIME_COLUMNS)}
    running = [rows[pk] for pk in ids if pk in rows and rows[pk].status == Status.RUNNING]
    _write(client, writer, running, instruments)
    pipe = client.pipeline(transaction=False)
    for pk in ids:
        strategy = rows.get(pk)
        if strategy is None:
            continue
        instrument = redis_keys.instrument(strategy.exchange, strategy.symbol)
        if strategy.status != Status.RUNNING:
            pipe.delete(redis_keys.strategy(pk))
            pipe.srem(redis_keys.symbol_strategies(instrument), str(pk))
            pipe.zrem(redis_keys.stop_losses(instrument), str(pk))
            instruments.add(instrument)
        elif strategy.position in _PAST_BOUGHT:
            pipe.zrem(redis_keys.stop_losses(instrument), str(pk))  # the exit disarmed it; we must not re-arm it
    pipe.execute()
    return len(ids)


def _announce(client: redis.Redis, instruments: set[str]) -> None:
    """Tell the market listener which instruments to look at again (it subscribes from
    the sets at once instead of at its next reconcile)."""
    pipe = client.pipeline(transaction=False)
    for instrument in sorted(instruments):
        pipe.publish(redis_keys.subscriptions_channel(), instrument)
    pipe.execute()


def _id(member: str) -> int | None:
    return int(member) if member.isdigit() else None


# --- the sentinel: does Redis still hold what the last recovery wrote ----------------------


def sentinel_write(*, trigger: str) -> None:
    """Set first in a recovery, so that a flush at any later moment of it is noticed."""
    get_redis().set(
        redis_keys.recovery_sentinel(),
        json.dumps({"trigger": trigger, "at": timezone.now().isoformat(), "server": server_id()}),
    )


def sentinel_clear() -> None:
    """The rebuild failed: the watch is to try again."""
    get_redis().delete(redis_keys.recovery_sentinel())


def server_id() -> str:
    """The Redis server's ``run_id``: new at every start of a server ("" behind a proxy
    that refuses INFO: then only a lost sentinel is noticed)."""
    try:
        return str(get_redis().info("server").get("run_id", ""))
    except redis.ResponseError:
        return ""
