"""``emit`` (``emit_many`` for a batch): the one way a catalogue event is recorded, as an EventLog
row, a log line, a metric and, after commit, a WebSocket push; ``error_log`` (L3) for a caught
broker or Redis failure; and the operators' alerts (L4)."""

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.db import IntegrityError, transaction
from django.utils import timezone

from algotrader.celery import task_send
from algotrader.queues import TaskName
from monitoring import transports
from monitoring.events import Event
from monitoring.logging import redact_text
from monitoring.metrics import EVENTS
from monitoring.models import Alert, EventLog
from monitoring.pusher import push_to_users
from monitoring.transports import TransportError

logger = logging.getLogger("algotrader.events")


class UserRef(Protocol):
    """A user, as events need one: monitoring sits below the apps that own the models."""

    @property
    def pk(self) -> Any: ...


class StrategyRef(Protocol):
    """A strategy, as events need one: its id and its owner's."""

    @property
    def pk(self) -> Any: ...
    @property
    def owner_id(self) -> int: ...


class OrderRef(Protocol):
    """An order, as events need one: its id and its strategy's."""

    @property
    def pk(self) -> Any: ...
    @property
    def strategy_id(self) -> int: ...


@dataclass(frozen=True)
class Emission:
    """One event for ``emit_many``, by ids: a batch of thousands needs no model instances."""

    event: Event
    user_id: int | None = None
    strategy_id: int | None = None
    message: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    order_id: int | None = None


def emit(
    event: Event,
    *,
    user: UserRef | None = None,
    strategy: StrategyRef | None = None,
    order: OrderRef | None = None,
    message: str = "",
    payload: dict[str, Any] | None = None,
) -> EventLog:
    """Record ``event``. A strategy's events form its timeline; its owner is the user.
    ``order``: the order the event concerns (an order's history is its events)."""
    # The owner's id, not the owner: a strategy read without its owner costs no query here.
    user_id = user.pk if user is not None else (strategy.owner_id if strategy is not None else None)
    [record] = emit_many(
        [
            Emission(
                event,
                user_id=user_id,
                strategy_id=strategy.pk if strategy else (order.strategy_id if order else None),
                message=message,
                payload=payload or {},
                order_id=order.pk if order else None,
            )
        ]
    )
    return record


def error_emission(
    *,
    source: str,
    error: BaseException | str,
    message: str = "",
    user_id: int | None = None,
    strategy_id: int | None = None,
    order_id: int | None = None,
    payload: dict[str, Any] | None = None,
) -> Emission:
    """L3 for a caught broker or Redis failure, as an Emission (for a thread that queues
    its events, like the market listener). ``source`` names what failed: "broker", "redis"."""
    kind = type(error).__name__ if isinstance(error, BaseException) else "Error"
    described = redact_text(f"{kind}: {error}")[:300]
    return Emission(
        Event.L3_ERROR_LOGGED,
        user_id=user_id,
        strategy_id=strategy_id,
        message=f"{message or source + ' failure'}: {described}"[:500],
        payload={**(payload or {}), "source": source, "error_type": kind, "error": described},
        order_id=order_id,
    )


def error_log(
    *,
    source: str,
    error: BaseException | str,
    message: str = "",
    strategy: StrategyRef | None = None,
    order: OrderRef | None = None,
    payload: dict[str, Any] | None = None,
) -> EventLog:
    """L3: a broker or Redis failure that was caught and handled (retried, degraded, left
    to recovery), recorded so that operators see how often and where it happens."""
    [record] = emit_many(
        [
            error_emission(
                source=source,
                error=error,
                message=message,
                user_id=strategy.owner_id if strategy else None,
                strategy_id=strategy.pk if strategy else (order.strategy_id if order else None),
                order_id=order.pk if order else None,
                payload=payload,
            )
        ]
    )
    return record


# What another app records beside some events (the user's notifications), in the events'
# transaction: registered by that app (monitoring, the bottom layer, imports none).
EventFollower = Callable[[Sequence[tuple[Emission, EventLog]]], None]
_followers: dict[Event, list[EventFollower]] = {}


def event_followers_register(*, events: Iterable[Event], follower: EventFollower) -> None:
    """Have ``follower`` called with every recording of ``events`` (each with its EventLog
    row), inside the transaction that records them, so both commit or neither does."""
    for event in events:
        if follower not in _followers.setdefault(event, []):
            _followers[event].append(follower)


def emit_many(emissions: Sequence[Emission]) -> list[EventLog]:
    """Record many events at once (a scheduler fan-out): one INSERT for all the rows,
    then, as ``emit`` does for one, a JSON log line each and, after commit, the pushes."""
    if any(emission.event in _followers for emission in emissions):
        # What a follower records commits with the events it follows, or not at all.
        with transaction.atomic(savepoint=False):
            records = _emit_many(emissions)
            _follow(emissions, records)
        return records
    return _emit_many(emissions)


def _follow(emissions: Sequence[Emission], records: Sequence[EventLog]) -> None:
    by_follower: dict[EventFollower, list[tuple[Emission, EventLog]]] = {}
    for emission, record in zip(emissions, records, strict=True):
        for follower in _followers.get(emission.event, ()):
            by_follower.setdefault(follower, []).append((emission, record))
    for follower, followed in by_follower.items():
        follower(followed)


def _emit_many(emissions: Sequence[Emission]) -> list[EventLog]:
    records = [
        EventLog(
            code=emission.event.code,
            user_id=emission.user_id,
            strategy_id=emission.strategy_id,
            order_id=emission.order_id,
            message=emission.message[:500],
            payload=emission.payload,
        )
        for emission in emissions
    ]
    if len(records) == 1 and not transaction.get_connection().in_atomic_block:
        # One INSERT is atomic on its own; bulk_create would wrap it in a transaction for nothing.
        records[0].save(force_insert=True)
    else:
        records = EventLog.objects.bulk_create(records)
    pushes: list[tuple[int, dict[str, Any]]] = []
    for emission, record in zip(emissions, records, strict=True):
        event = emission.event
        EVENTS.labels(event.code).inc()
        logger.info(
            emission.message or event.label,
            extra={
                "event": event.code,
                "event_name": event.label,
                "category": event.category.value,
                "event_id": record.pk,
                "user_id": emission.user_id,
                "strategy_id": emission.strategy_id,
                "order_id": emission.order_id,
                "payload": emission.payload,
            },
        )
        if emission.user_id is not None and event.user_visible:
            body = {
                "id": record.pk,
                "code": event.code,
                "name": event.label,
                "strategy_id": emission.strategy_id,
                "order_id": emission.order_id,
                "message": record.message,
                "payload": emission.payload,
                "created_at": record.created_at.isoformat(),
            }
            pushes.append((emission.user_id, body))
    if pushes:
        transaction.on_commit(lambda: push_to_users(pushes))
    return records


# --- Alerts (L4) ------------------------------------------------------------------------


def alert_raise(
    *,
    kind: str,
    key: str,
    message: str,
    severity: str = Alert.Severity.CRITICAL,
    user: UserRef | None = None,
    strategy: StrategyRef | None = None,
    order: OrderRef | None = None,
    payload: dict[str, Any] | None = None,
) -> Alert | None:
    """Open the incident (``kind``, ``key``) and record its L4 (the user's timeline and
    WebSocket when a user is concerned); operators are told after commit by a task.
    Returns None, and records nothing, if that incident is already open: the partial
    unique constraint decides between racing processes, so an incident is sent once."""
    user_id = user.pk if user is not None else (strategy.owner_id if strategy is not None else None)
    details = payload or {}
    with transaction.atomic():
        try:
            with transaction.atomic():
                alert = Alert.objects.create(
                    kind=kind,
                    key=key[:200],
                    severity=severity,
                    user_id=user_id,
                    strategy_id=strategy.pk if strategy is not None else None,
                    message=redact_text(message)[:500],
                    payload=details,
                )
        except IntegrityError:
            logger.info("alert already open", extra={"alert": kind, "key": key})
            return None
        emit(
            Event.L4_ALERT_TRIGGERED,
            user=user,
            strategy=strategy,
            order=order,
            message=message,
            payload={**details, "alert": kind, "key": key, "alert_id": alert.pk, "severity": severity, "state": "open"},
        )
        _notify_after_commit(alert.pk)
    return alert


def alert_resolve(*, kind: str, key: str, resolution: str = "", message: str = "") -> Alert | None:
    """Close the open incident (``kind``, ``key``), record an L4 saying so, and tell
    operators; None if none is open (resolving is idempotent)."""
    if not Alert.objects.filter(kind=kind, key=key[:200], resolved_at__isnull=True).exists():
        # The usual case (an order that went through resolves its outage alert) needs no
        # transaction: an alert opened just after is as if opened after the call.
        return None
    return _alert_close(kind=kind, key=key, resolution=resolution, message=message)


def _alert_close(*, kind: str, key: str, resolution: str, message: str = "") -> Alert | None:
    """``alert_resolve`` once a look found the incident open: closed under its row lock."""
    with transaction.atomic():
        alert = Alert.objects.select_for_update().filter(kind=kind, key=key[:200], resolved_at__isnull=True).first()
        if alert is None:
            return None
        alert.resolved_at = timezone.now()
        alert.resolution = resolution[:200]
        Alert.objects.filter(pk=alert.pk).update(resolved_at=alert.resolved_at, resolution=alert.resolution)
        emit_many(
            [
                Emission(
                    Event.L4_ALERT_TRIGGERED,
                    user_id=alert.user_id,
                    strategy_id=alert.strategy_id,
                    message=message or f"Resolved: {alert.message}"[:500],
                    payload={
                        **alert.payload,
                        "alert": kind,
                        "key": key,
                        "alert_id": alert.pk,
                        "severity": alert.severity,
                        "state": "resolved",
                        "resolution": alert.resolution,
                    },
                )
            ]
        )
        _notify_after_commit(alert.pk)
    return alert


def alerts_resolve(*, kinds: Sequence[str], key: str, resolution: str = "") -> list[Alert]:
    """``alert_resolve`` for several kinds of one key, with one look for all of them: the
    usual case (a closed position, a recovered account) has none open."""
    open_kinds = set(
        Alert.objects.filter(kind__in=kinds, key=key[:200], resolved_at__isnull=True).values_list("kind", flat=True)
    )
    resolved = (_alert_close(kind=kind, key=key, resolution=resolution) for kind in kinds if kind in open_kinds)
    return [alert for alert in resolved if alert is not None]


def _notify_after_commit(alert_id: int) -> None:
    # robust: a Celery broker that is down must not fail the committed caller; the
    # periodic sweep (alerts_notify_pending_task) delivers what could not be enqueued.
    transaction.on_commit(lambda: task_send(TaskName.ALERT_NOTIFY, args=(alert_id,)), robust=True)


def alert_notify(*, alert_id: int) -> list[TransportError]:
    """Tell operators of the alert's opening and, once it is resolved, of its resolution:
    each channel once. The row lock serialises two deliveries of the task; a channel
    that failed is retried alone (returned, for the task to retry), one that succeeded
    or failed for good is never sent again."""
    failures: list[TransportError] = []
    with transaction.atomic():
        alert = Alert.objects.select_for_update().filter(pk=alert_id).first()
        if alert is None:
            return failures
        stages = []
        if alert.notified_at is None:
            stages.append("open")
        if alert.resolved_at is not None and alert.resolve_notified_at is None:
            stages.append("resolve")
        channels = transports.configured()
        for stage in stages:
            for channel in channels:
                mark = f"{channel.name}:{stage}"
                if mark in alert.deliveries:
                    continue
                try:
                    channel.send(alert, stage=stage)
                except TransportError as error:
                    logger.warning(
                        "alert delivery failed",
                        extra={"alert_id": alert.pk, "channel": channel.name, "permanent": error.permanent},
                    )
                    if not error.permanent:
                        failures.append(error)
                        continue
                    alert.deliveries[mark] = f"failed: {error}"[:200]  # retrying cannot help
                    continue
                alert.deliveries[mark] = timezone.now().isoformat()
            if all(f"{channel.name}:{stage}" in alert.deliveries for channel in channels):
                setattr(alert, "notified_at" if stage == "open" else "resolve_notified_at", timezone.now())
        alert.save(update_fields=["deliveries", "notified_at", "resolve_notified_at"])
    return failures


# Tasks whose crash is a strategy crash (their first argument is a strategy id), each with
# how to read that strategy: registered by the app that owns the tasks (execution), which
# monitoring, the bottom layer, does not import.
StrategyReader = Callable[[int], StrategyRef | None]
_strategy_tasks: dict[str, StrategyReader] = {}


def strategy_tasks_register(*, names: Iterable[str], reader: StrategyReader) -> None:
    for name in names:
        _strategy_tasks[name] = reader


def task_failure_alert(*, task_name: str, args: list[Any], error: BaseException | None) -> Alert | None:
    """A task ended by an exception. An order task's is a strategy crash (its order, if
    any, is settled by recovery; its position may need an operator); any other task's is
    one incident per task until an operator resolves it."""
    described = redact_text(f"{type(error).__name__}: {error}")[:300] if error is not None else "unknown error"
    short = task_name.rsplit(".", 1)[-1]
    reader = _strategy_tasks.get(task_name)
    if reader is not None and args and isinstance(args[0], int):
        strategy = reader(args[0])
        return alert_raise(
            kind="strategy_crash",
            key=f"strategy:{args[0]}",
            strategy=strategy,
            message=f"Strategy #{args[0]} crashed in {short}: {described}",
            payload={"task": task_name, "strategy_id": args[0], "error": described},
        )
    return alert_raise(
        kind="task_failed",
        key=task_name[:200],
        severity=Alert.Severity.WARNING,
        message=f"Task {short} failed: {described}",
        payload={"task": task_name, "error": described},
    )
