"""Recovery (X1 RUNTIME_STATE_LOADED, X4 SYSTEM_RECOVERY). Redis is a cache of the
database: at the start of every worker and of the market listener, on demand
(``manage.py recover``) and within a second of Redis losing its data (a flush, a restart
without persistence), the runtime is rebuilt from the committed database, live orders are
reconciled by their tag, beat's slots resynced and order tasks the queues lost sent again.

Idempotent and safe at any time: every write is computed from the database and guarded
against what races it (the runtime copy by its ``version``; anything that moved while
the rebuild ran is written again from its new state), orders are settled only through
the execution engine's own compare-and-set services, and execution locks are never
touched (a live worker's lock is its own; a dead worker's expires by itself). One recovery
runs at a time (a PostgreSQL advisory lock) so that concurrent starts do not repeat the
work, but nothing depends on it for correctness."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

import redis
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone

from algotrader import redis_keys
from algotrader.celery import app
from algotrader.redis_client import get_redis
from monitoring.events import Event
from monitoring.services import emit
from strategies.buy_window import buy_valid_until, buy_window_earliest_fire_at
from strategies.models import Strategy
from strategies.runtime import runtime_fields

logger = logging.getLogger(__name__)

Status = Strategy.Status
Position = Strategy.Position

BATCH = 1000  # strategies read and written per round trip
_LOCK_SPACE = 0x5EC0E7  # the PostgreSQL advisory lock held while a recovery runs
_LOCK_WAIT_SECONDS = 120.0
_SETTLE_PASSES = 10  # rounds of the settlement (each takes at most its own batch)
# A position past BOUGHT never goes back to it: a stop armed for one is always stale.
_PAST_BOUGHT = (Position.EXITING, Position.SOLD, Position.EXITED_BY_SL)
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
    "buy_fire_at",
    "sell_fire_at",
    "version",
)

# Write the runtime copy (ARGV[1]: its fields as one JSON object, far cheaper to send than
# 26 arguments) unless Redis already holds a newer version of it, written by the execution
# engine after our read of the database: a rebuild never moves a copy back.
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


class Trigger(StrEnum):
    """What started a recovery (X4's ``trigger``)."""

    WORKER_START = "worker_start"
    LISTENER_START = "listener_start"
    COMMAND = "command"
    REDIS_FLUSH = "redis_flush"  # the sentinel is gone: the data was flushed or lost
    REDIS_RESTART = "redis_restart"  # another Redis server answers: restarted from an old snapshot, or failed over


@dataclass
class RuntimeLoaded:
    """X1: what the rebuild wrote."""

    strategies: int = 0
    instruments: int = 0
    stops_armed: int = 0
    stale_removed: int = 0
    rewritten: int = 0
    seconds: float = 0.0


@dataclass
class Recovery:
    """X4: one whole recovery."""

    trigger: str
    loaded: RuntimeLoaded
    slots_created: int = 0
    orders_settled: int = 0
    tasks_resent: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


# --- the whole recovery ----------------------------------------------------------------


def system_recover(*, trigger: Trigger, wait: bool = False, detail: dict[str, Any] | None = None) -> Recovery | None:
    """Rebuild the runtime, then reconcile what the crash or flush left; X1 and X4.
    Returns None (and does nothing) if another recovery is running and ``wait`` is False:
    that one's work is as good as ours (a flush after it began is seen again by the
    watch, since the sentinel is set before anything is rebuilt)."""
    with _recovery_lock(wait=wait) as held:
        if not held:
            logger.info("recovery already running elsewhere", extra={"trigger": str(trigger)})
            return None
        started = time.monotonic()
        redis_client = get_redis()
        # First, so that a flush at any later moment of this run is noticed by the watch.
        redis_client.set(
            redis_keys.recovery_sentinel(),
            json.dumps({"trigger": str(trigger), "at": timezone.now().isoformat(), "server": _server_id()}),
        )
        try:
            queues_declare()
            loaded = runtime_rebuild()
        except Exception:
            redis_client.delete(redis_keys.recovery_sentinel())  # not rebuilt: the watch tries again
            raise
        emit(
            Event.X1_RUNTIME_STATE_LOADED,
            message=f"Runtime rebuilt from the database: {loaded.strategies} running strategies, "
            f"{loaded.stops_armed} stops armed",
            payload={"trigger": str(trigger), **asdict(loaded)},
        )
        report = Recovery(trigger=str(trigger), loaded=loaded)
        report.slots_created = _step(report, "slots", _slots_resync)
        report.orders_settled = _step(report, "orders", _orders_settle)
        report.tasks_resent = _step(report, "tasks", _order_tasks_resend)
        report.seconds = round(time.monotonic() - started, 3)
        emit(
            Event.X4_SYSTEM_RECOVERY,
            message=f"System recovery after {_TRIGGER_TEXT[trigger]}",
            payload={
                "trigger": str(trigger),
                **(detail or {}),
                "strategies": loaded.strategies,
                "stops_armed": loaded.stops_armed,
                "slots_created": report.slots_created,
                "orders_settled": report.orders_settled,
                "tasks_resent": report.tasks_resent,
                "errors": report.errors,
                "seconds": report.seconds,
            },
        )
        logger.info("recovery done", extra={"trigger": str(trigger), **asdict(report)})
        return report


_TRIGGER_TEXT = {
    Trigger.WORKER_START: "a worker start",
    Trigger.LISTENER_START: "the market listener's start",
    Trigger.COMMAND: "manage.py recover",
    Trigger.REDIS_FLUSH: "Redis lost its data",
    Trigger.REDIS_RESTART: "Redis restarted or failed over",
}


def _step(report: Recovery, name: str, run: Any) -> int:
    """One reconciliation step; a failing one (the broker down) is reported, not fatal:
    the periodic settlement and the next recovery try again."""
    try:
        return int(run())
    except Exception as error:
        logger.exception("recovery step failed", extra={"step": name})
        report.errors.append(f"{name}: {type(error).__name__}")
        return 0


@contextmanager
def _recovery_lock(*, wait: bool) -> Iterator[bool]:
    """A PostgreSQL session advisory lock (freed if the process dies), not a Redis one:
    a flush must not free it under a running recovery."""
    deadline = time.monotonic() + (_LOCK_WAIT_SECONDS if wait else 0)
    while True:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, 0)", [_LOCK_SPACE])
            (held,) = cursor.fetchone()
        if held or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    try:
        yield bool(held)
    finally:
        if held:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, 0)", [_LOCK_SPACE])
            except DatabaseError:
                connection.close()  # closing the session frees the lock
                raise


def recovery_running() -> bool:
    """Whether some process holds the recovery lock now (read from ``pg_locks``,
    never by trying the lock, which would make a recovery starting at that moment skip)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = %s AND objid = 0 AND objsubid = 2 AND database ="
            " (SELECT oid FROM pg_database WHERE datname = current_database()))",
            [_LOCK_SPACE],
        )
        (running,) = cursor.fetchone()
    return bool(running)


# --- Redis from the database -------------------------------------------------------------


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
    armed at its ``stop_trigger_price``, entries of strategies no longer running removed.
    Batched: one query and one pipelined round trip per ``batch_size`` strategies."""
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


def _write(client: redis.Redis, writer: Any, strategies: Iterable[Strategy], instruments: set[str]) -> int:
    """Load running strategies; returns the stops armed."""
    pipe = client.pipeline(transaction=False)
    members: dict[str, list[int]] = defaultdict(list)
    stops: dict[str, dict[str, float]] = defaultdict(dict)
    for strategy in strategies:
        instrument = redis_keys.instrument(strategy.exchange, strategy.symbol)
        writer(keys=[redis_keys.strategy(strategy.pk)], args=[json.dumps(runtime_fields(strategy))], client=pipe)
        members[instrument].append(strategy.pk)
        if strategy.position == Position.BOUGHT and strategy.stop_trigger_price:
            # As ``market.stoploss_index.stoploss_arm`` scores it: the trigger as a double.
            stops[instrument][str(strategy.pk)] = float(strategy.stop_trigger_price)
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


# --- what the crash or flush left ------------------------------------------------------


def _slots_resync() -> int:
    from strategies import scheduling

    return scheduling.slots_resync()


def _orders_settle() -> int:
    """PENDING, UNKNOWN and PLACED orders nobody is working on, looked up by their tag and
    settled by the execution engine (adopted and followed, or failed and, for an exit,
    placed again under a new tag). Its own rules decide what is an orphan: untouched for
    ORDER_SETTLE_AFTER_SECONDS and its strategy's lock free."""
    from execution.services.recovery import orders_settle_interrupted

    settled = 0
    for _ in range(_SETTLE_PASSES):
        done = orders_settle_interrupted()
        settled += done
        if not done:
            break
    return settled


def _order_tasks_resend() -> int:
    """Order tasks lost with the queues (a flush empties them; a SIGKILLed worker's
    reserved tasks come back only after the visibility timeout): a BUY fired within its
    grace window that never started, a fired SELL that never claimed the exit, an exit a
    STOP or X5 asked for that no order stands for. Sent again; each task's own claim lets
    only one delivery act, so one that was merely slow costs nothing."""
    from execution.tasks import execute_buy_task, execute_sell_task

    now = timezone.now()
    quiet = now - timedelta(seconds=settings.ORDER_SETTLE_AFTER_SECONDS)
    buys = list(
        Strategy.objects.filter(
            status=Status.RUNNING,
            position=Position.NONE,
            buy_fired_at__lt=quiet,
            buy_fire_at__gte=buy_window_earliest_fire_at(now),
            sell_fired_at__isnull=True,
        )
        .exclude(orders__side="BUY")
        .order_by()
        .values_list("pk", "buy_fire_at")
    )
    sells = list(
        Strategy.objects.filter(status=Status.RUNNING, position=Position.BOUGHT, sell_fired_at__lt=quiet)
        .order_by()
        .values_list("pk", flat=True)
    )
    exits = list(
        Strategy.objects.filter(
            status__in=(Status.RUNNING, Status.STOPPED),
            position=Position.EXITING,
            exit_reason__in=(Strategy.ExitReason.STOP, Strategy.ExitReason.ABORT),
            updated_at__lt=quiet,
        )
        .exclude(orders__side="SELL")
        .order_by()
        .values_list("pk", "exit_reason")
    )
    # A BUY whose strategy is still locked (most likely by the worker that died with it)
    # waits for the lock to expire: sent at once it would only meet X3 and give up.
    pipe = get_redis().pipeline(transaction=False)
    for strategy_id, _ in buys:
        pipe.pttl(redis_keys.lock_state(strategy_id))
    locked_for = pipe.execute()
    with app.producer_or_acquire() as producer:
        for (strategy_id, fire_at), ttl in zip(buys, locked_for, strict=True):
            execute_buy_task.apply_async(
                (strategy_id,),
                producer=producer,
                expires=buy_valid_until(fire_at),
                countdown=float(ttl) / 1000 + 0.5 if ttl > 0 else 0.0,
            )
        for strategy_id in sells:
            execute_sell_task.apply_async((strategy_id,), {"reason": Strategy.ExitReason.SELL.value}, producer=producer)
        for strategy_id, reason in exits:
            execute_sell_task.apply_async((strategy_id,), {"reason": reason}, producer=producer)
    resent = len(buys) + len(sells) + len(exits)
    if resent:
        logger.warning(
            "order tasks sent again",
            extra={"buys": [b[0] for b in buys][:50], "sells": sells[:50], "exits": [e[0] for e in exits][:50]},
        )
    return resent


# --- when: at start, and when Redis loses its data ---------------------------------------


def runtime_intact() -> bool:
    """False once Redis has lost the data of the last recovery (or never saw one)."""
    return _runtime_lost() is None


def _runtime_lost() -> Trigger | None:
    """Why the runtime in Redis cannot be trusted, if it cannot: the sentinel is gone (a
    flush, a restart without persistence), or it was written to another server than the
    one answering now (a restart from an older snapshot, a failover to a replica): either
    way stops armed since may be missing."""
    sentinel = get_redis().get(redis_keys.recovery_sentinel())
    if sentinel is None:
        return Trigger.REDIS_FLUSH
    try:
        written_on = json.loads(str(sentinel)).get("server")
    except ValueError:
        return Trigger.REDIS_FLUSH
    return Trigger.REDIS_RESTART if written_on != _server_id() else None


def _server_id() -> str:
    """The Redis server's ``run_id``: new at every start of a server ("" behind a proxy
    that refuses INFO: then only a lost sentinel is noticed)."""
    try:
        return str(get_redis().info("server").get("run_id", ""))
    except redis.ResponseError:
        return ""


def recovery_watch(*, stop: threading.Event, trigger: Trigger | None, detail: dict[str, Any], interval: float) -> None:
    """A process's recovery thread: one recovery at its start (``trigger``), then a look at
    the sentinel every ``interval`` seconds, and a recovery as soon as it is gone."""
    if trigger is not None:
        _recover_quietly(trigger, detail)
    while interval > 0 and not stop.wait(interval):
        try:
            lost = _runtime_lost()
        except redis.RedisError:
            logger.warning("recovery watch: Redis unavailable", exc_info=True)
            continue
        if lost is not None:
            logger.warning("Redis lost the runtime state: recovering", extra={**detail, "trigger": str(lost)})
            _recover_quietly(lost, detail)
    close_old_connections()


def recovery_watch_start(*, trigger: Trigger, detail: dict[str, Any]) -> threading.Event:
    """Start ``recovery_watch`` on a daemon thread (a start must not wait for the rebuild,
    nor a worker stop consuming for it); set the returned event to end it."""
    stop = threading.Event()
    thread = threading.Thread(
        target=recovery_watch,
        kwargs={"stop": stop, "trigger": trigger, "detail": detail, "interval": settings.RECOVERY_WATCH_SECONDS},
        name="recovery-watch",
        daemon=True,
    )
    thread.start()
    return stop


def _recover_quietly(trigger: Trigger, detail: dict[str, Any]) -> None:
    close_old_connections()
    try:
        system_recover(trigger=trigger, detail=detail)
    except Exception:  # the process goes on; the watch (or the next start) tries again
        logger.exception("recovery failed", extra={"trigger": str(trigger)})
    finally:
        close_old_connections()
