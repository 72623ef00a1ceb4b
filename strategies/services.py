"""Strategy services: create (U4), update (U5, T3), start (U6, S1-S3), stop (U7, S4), delete, exit (S5).

Each transition is a compare-and-set that bumps ``version``, so two racing actors never both win; Redis
and the schedule are set up only after the commit, because workers must see the committed state."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, ProtectedError
from django.utils import timezone

from algotrader import redis_keys
from algotrader.celery import task_send
from algotrader.exceptions import ValidationFailed
from algotrader.queues import TaskName
from algotrader.users.models import User
from brokers.selectors import broker_account_get
from monitoring.events import Event
from monitoring.services import emit
from strategies import runtime, slots
from strategies.exceptions import InvalidTransition, StrategyNotRunning, StrategyStartFailed
from strategies.exit_index import exit_levels, exits_arm_held
from strategies.models import Strategy
from strategies.selectors import strategy_get
from strategies.stoploss_index import stoploss_move
from strategies.validation import Plan, validate_plan

logger = logging.getLogger(__name__)

Status = Strategy.Status
Position = Strategy.Position

EXIT_FIELDS = ("stop_loss_trail_percent", "stop_loss_trail_points", "take_profit_percent", "take_profit_price")
UPDATABLE = frozenset(
    {"quantity", "buy_at", "sell_at", "stop_loss_price", "stop_loss_percent", "trade_date", *EXIT_FIELDS}
)
# Giving one kind of trail or target replaces the other (both at once is refused).
_ONE_OF = (("stop_loss_trail_percent", "stop_loss_trail_points"), ("take_profit_percent", "take_profit_price"))
# Checked against the instrument's last price when they are set.
PRICED_EXITS = frozenset({"stop_loss_price", "take_profit_price"})
OPEN_POSITIONS = (Position.BUYING, Position.BOUGHT, Position.EXITING)


def strategy_transition(*, strategy_id: int, expected: dict[str, Any], changes: dict[str, Any]) -> bool:
    """Move a strategy from ``expected`` to ``changes`` if, and only if, it is still in
    ``expected``: exactly one row changes, or another actor got there first."""
    changed = Strategy.objects.filter(pk=strategy_id, **expected).update(
        **changes, version=F("version") + 1, updated_at=timezone.now()
    )
    return changed == 1


def _about(strategy: Strategy) -> dict[str, Any]:
    return {"strategy_id": strategy.pk, "symbol": f"{strategy.exchange}:{strategy.symbol}"}


def strategy_create(
    *,
    user: User,
    broker_account_id: int,
    exchange: str,
    symbol: str,
    quantity: int,
    buy_at: time,
    sell_at: time,
    stop_loss_price: Decimal | None = None,
    stop_loss_percent: Decimal | None = None,
    trade_date: date | None = None,
    stop_loss_trail_percent: Decimal | None = None,
    stop_loss_trail_points: Decimal | None = None,
    take_profit_percent: Decimal | None = None,
    take_profit_price: Decimal | None = None,
    protective_stop: bool = True,
) -> Strategy:
    account = broker_account_get(user=user, account_id=broker_account_id)
    plan = Plan(
        exchange,
        symbol.upper(),
        quantity,
        buy_at,
        sell_at,
        stop_loss_price,
        stop_loss_percent,
        trade_date,
        stop_loss_trail_percent=stop_loss_trail_percent,
        stop_loss_trail_points=stop_loss_trail_points,
        take_profit_percent=take_profit_percent,
        take_profit_price=take_profit_price,
    )
    resolved = validate_plan(account=account, plan=plan, now=timezone.now(), against_last_price=PRICED_EXITS)
    with transaction.atomic():
        strategy = Strategy.objects.create(
            owner=user,
            broker_account=account,
            venue=resolved.venue,
            exchange=plan.exchange,
            symbol=plan.symbol,
            quantity=plan.quantity,
            trade_date=resolved.trade_date,
            buy_at=plan.buy_at,
            sell_at=plan.sell_at,
            stop_loss_price=plan.stop_loss_price,
            stop_loss_percent=plan.stop_loss_percent,
            stop_loss_trail_percent=plan.stop_loss_trail_percent,
            stop_loss_trail_points=plan.stop_loss_trail_points,
            take_profit_percent=plan.take_profit_percent,
            take_profit_price=plan.take_profit_price,
            protective_stop=protective_stop,
            buy_fire_at=resolved.buy_fire_at,
            sell_fire_at=resolved.sell_fire_at,
        )
        emit(Event.U4_STRATEGY_CREATED, strategy=strategy, payload=_about(strategy))
    return strategy


def _refuse_changes_the_state_forbids(strategy: Strategy, changes: dict[str, Any]) -> None:
    errors: dict[str, list[str]] = {}
    if strategy.status == Status.EXITED:
        raise InvalidTransition("An exited strategy cannot change.")
    running = strategy.status == Status.RUNNING
    if "quantity" in changes and (strategy.buy_fired_at or strategy.position != Position.NONE):
        errors["quantity"] = ["The quantity cannot change once the BUY has been sent."]
    if "buy_at" in changes and strategy.buy_fired_at:
        errors["buy_at"] = ["The buy time has passed: the BUY has been sent."]
    if "sell_at" in changes and strategy.sell_fired_at:
        errors["sell_at"] = ["The sell time has passed: the SELL has been sent."]
    if "trade_date" in changes and running:
        errors["trade_date"] = ["Stop the strategy before moving it to another day."]
    if errors:
        raise ValidationFailed(fields=errors)


def strategy_update(*, user: User, strategy_id: int, **changes: Any) -> Strategy:
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise ValidationFailed(fields={name: ["This field cannot be changed."] for name in sorted(unknown)})
    # Giving one kind of stop-loss replaces the other.
    if changes.get("stop_loss_price") is not None:
        changes["stop_loss_percent"] = None
    elif changes.get("stop_loss_percent") is not None:
        changes["stop_loss_price"] = None
    for one, other in _ONE_OF:
        if changes.get(one) is not None and other not in changes:
            changes[other] = None
        elif changes.get(other) is not None and one not in changes:
            changes[one] = None

    with transaction.atomic():
        strategy = strategy_get(user=user, strategy_id=strategy_id, for_update=True)
        stop_before = strategy.stop_trigger_price
        _refuse_changes_the_state_forbids(strategy, changes)
        merged = {name: changes.get(name, getattr(strategy, name)) for name in UPDATABLE}
        plan = Plan(strategy.exchange, strategy.symbol, **merged)
        # A running strategy whose BUY was sent keeps its past buy time; a changed one must lie ahead.
        buy_must_be_ahead = "buy_at" in changes or strategy.status != Status.RUNNING
        resolved = validate_plan(
            account=strategy.broker_account,
            plan=plan,
            now=timezone.now(),
            buy_must_be_ahead=buy_must_be_ahead,
            entering=strategy.buy_fired_at is None,
            against_last_price=frozenset(changes),
        )
        moved = (resolved.buy_fire_at, resolved.sell_fire_at) != (strategy.buy_fire_at, strategy.sell_fire_at)
        fields = {**merged, "trade_date": resolved.trade_date}
        fields.update(buy_fire_at=resolved.buy_fire_at, sell_fire_at=resolved.sell_fire_at)
        if strategy.entry_price is not None and strategy.position == Position.BOUGHT:
            levels = exit_levels(
                entry_price=strategy.entry_price,
                fixed_stop=stop_trigger_price(
                    entry_price=strategy.entry_price,
                    stop_loss_price=fields["stop_loss_price"],
                    stop_loss_percent=fields["stop_loss_percent"],
                ),
                high=strategy.trail_high_price,
                trail_percent=fields["stop_loss_trail_percent"],
                trail_points=fields["stop_loss_trail_points"],
                target_percent=fields["take_profit_percent"],
                target_price=fields["take_profit_price"],
            )
            fields.update(stop_trigger_price=levels.stop, target_price=levels.target)
            if fields["stop_loss_trail_percent"] is None and fields["stop_loss_trail_points"] is None:
                fields["trail_high_price"] = None
            elif strategy.trail_high_price is None:
                fields["trail_high_price"] = strategy.entry_price
        if not strategy_transition(
            strategy_id=strategy.pk, expected={"version": strategy.version, "status": strategy.status}, changes=fields
        ):
            raise InvalidTransition("The strategy changed meanwhile; reload it and try again.")
        strategy.refresh_from_db()
        emit(Event.U5_STRATEGY_UPDATED, strategy=strategy, payload={**_about(strategy), "changed": sorted(changes)})

    if strategy.status == Status.RUNNING:
        # Refresh, not load: loading frees the execution lock, which a worker may hold.
        runtime.runtime_refresh(strategy)
        # Only when the exits changed: the trail may have raised the stop in Redis past its last record.
        exits_changed = bool(set(changes) & {"stop_loss_price", "stop_loss_percent", *EXIT_FIELDS})
        if strategy.position == Position.BOUGHT and strategy.stop_trigger_price is not None and exits_changed:
            armed = stoploss_move(
                strategy_id=strategy.pk,
                instrument=redis_keys.instrument(strategy.exchange, strategy.symbol),
                trigger_price=strategy.stop_trigger_price,
            )
            if armed and set(changes) & set(EXIT_FIELDS):
                exits_arm_held(strategy)  # U5 while held: the target and the trail move with it
            if strategy.stop_trigger_price != stop_before:
                # The protective stop resting at the broker follows (execution's, by its task).
                task_send(TaskName.MOVE_PROTECTIVE_STOP, args=(strategy.pk, str(strategy.stop_trigger_price)))
        if moved:
            slots.reschedule_strategy(strategy)
    return strategy


def stop_trigger_price(
    *, entry_price: Decimal, stop_loss_price: Decimal | None, stop_loss_percent: Decimal | None
) -> Decimal:
    """The price at or below which the position is exited: given, or a percentage below the fill."""
    if stop_loss_price is not None:
        return stop_loss_price
    assert stop_loss_percent is not None
    return (entry_price * (Decimal(100) - stop_loss_percent) / Decimal(100)).quantize(Decimal("0.01"))


def strategy_trail_record(
    *, strategy_id: int, high_price: Decimal, stop_price: Decimal, move_protective: bool = True
) -> bool:
    """P4: a trailing stop the tick consumer raised, recorded (at its throttled rate) so that a
    rebuild arms the moved stop, never the entry's, and (``move_protective``: within the broker's
    modification budget) the protective order sent after it. Only raises a held position's stop:
    False if the position moved on, or a record at least as high is there already."""
    with transaction.atomic():
        moved = Strategy.objects.filter(
            pk=strategy_id, position=Position.BOUGHT, stop_trigger_price__lt=stop_price
        ).update(trail_high_price=high_price, stop_trigger_price=stop_price, updated_at=timezone.now())
        if not moved:
            return False
        strategy = Strategy.objects.get(pk=strategy_id)
        emit(
            Event.P4_TRAILING_STOP_MOVED,
            strategy=strategy,
            message=f"Trailing stop raised to {stop_price} (high {high_price})",
            payload={**_about(strategy), "high_price": str(high_price), "stop_price": str(stop_price)},
        )
        if move_protective:
            transaction.on_commit(lambda: task_send(TaskName.MOVE_PROTECTIVE_STOP, args=(strategy_id, str(stop_price))))
    return True


def strategy_start(*, user: User, strategy_id: int) -> Strategy:
    with transaction.atomic():
        strategy = strategy_get(user=user, strategy_id=strategy_id, for_update=True)
        emit(Event.U6_STRATEGY_START_REQUESTED, strategy=strategy, payload=_about(strategy))
        if strategy.status not in (Status.CREATED, Status.STOPPED) or strategy.position != Position.NONE:
            raise InvalidTransition(f"A strategy that is {strategy.status.lower()} cannot start.")
        plan = Plan(
            strategy.exchange,
            strategy.symbol,
            strategy.quantity,
            strategy.buy_at,
            strategy.sell_at,
            strategy.stop_loss_price,
            strategy.stop_loss_percent,
            strategy.trade_date,
        )
        validate_plan(account=strategy.broker_account, plan=plan, now=timezone.now())
        started = strategy_transition(
            strategy_id=strategy.pk,
            expected={"status": strategy.status, "position": Position.NONE, "version": strategy.version},
            changes={
                "status": Status.RUNNING,
                "started_at": timezone.now(),
                "buy_fired_at": None,
                "sell_fired_at": None,
            },
        )
        if not started:
            raise InvalidTransition("The strategy changed meanwhile; reload it and try again.")
        strategy.refresh_from_db()
        emit(Event.S1_STRATEGY_STARTED, strategy=strategy, payload=_about(strategy))

    try:
        runtime.runtime_load(strategy)
        slots.schedule_strategy(strategy)
    except Exception as error:
        logger.exception("strategy start failed after commit", extra={"strategy_id": strategy.pk})
        emit(Event.L3_ERROR_LOGGED, strategy=strategy, message=f"Start failed: {type(error).__name__}")
        _undo_start(strategy)
        raise StrategyStartFailed() from error
    emit(Event.S2_STRATEGY_READY, strategy=strategy, payload=_about(strategy))
    emit(Event.S3_STRATEGY_RUNNING, strategy=strategy, payload=_about(strategy))
    return strategy


def _undo_start(strategy: Strategy) -> None:
    strategy_transition(
        strategy_id=strategy.pk,
        expected={"status": Status.RUNNING, "position": Position.NONE, "buy_fired_at": None},
        changes={"status": Status.STOPPED},
    )
    try:
        runtime.runtime_clear(strategy)
        slots.unschedule_strategy(strategy)
    except Exception:
        logger.exception("cleanup after a failed start failed", extra={"strategy_id": strategy.pk})


def strategy_stop(*, user: User, strategy_id: int, keep_position: bool = False) -> Strategy:
    """STOP: no more timers. A held position is exited at market (reason STOP) unless
    the user asks to keep it, in which case it is theirs to manage at the broker."""
    exit_position = False
    with transaction.atomic():
        strategy = strategy_get(user=user, strategy_id=strategy_id, for_update=True)
        emit(Event.U7_STRATEGY_STOP_REQUESTED, strategy=strategy, payload={**_about(strategy), "keep": keep_position})
        if strategy.status != Status.RUNNING:
            raise StrategyNotRunning()
        changes: dict[str, Any] = {"status": Status.STOPPED}
        if strategy.position == Position.BOUGHT and not keep_position:
            changes.update(position=Position.EXITING, exit_reason=Strategy.ExitReason.STOP)
            exit_position = True
        if not strategy_transition(
            strategy_id=strategy.pk,
            expected={"status": Status.RUNNING, "position": strategy.position, "version": strategy.version},
            changes=changes,
        ):
            raise InvalidTransition("The strategy changed meanwhile; reload it and try again.")
        strategy.refresh_from_db()
        emit(Event.S4_STRATEGY_STOPPED, strategy=strategy, payload={**_about(strategy), "exit": exit_position})
        # L1 "STOP": the strategy's own record of the STOP; an exit it asks for gets its own L1 when filled.
        emit(
            Event.L1_STRATEGY_EVENT_LOGGED,
            strategy=strategy,
            message="STOP: exiting the position" if exit_position else "STOP",
            payload={**_about(strategy), "action": "STOP", "outcome": "STOPPED", "exit": exit_position},
        )

    slots.unschedule_strategy(strategy)
    runtime.runtime_clear(strategy)
    if exit_position:
        task_send(
            TaskName.EXECUTE_SELL,
            args=(strategy.pk,),
            kwargs={"reason": Strategy.ExitReason.STOP.value},
            expires=settings.SELL_EXPIRES_SECONDS,
        )
    return strategy


def strategy_delete(*, user: User, strategy_id: int) -> None:
    with transaction.atomic():
        strategy = strategy_get(user=user, strategy_id=strategy_id, for_update=True)
        if strategy.status == Status.RUNNING or strategy.position in OPEN_POSITIONS:
            raise InvalidTransition("Stop the strategy (and close its position) before deleting it.")
        try:
            with transaction.atomic():
                strategy.delete()
        except ProtectedError:  # it traded: its orders are a broker's record and keep it, hidden
            Strategy.objects.filter(pk=strategy.pk).update(deleted_at=timezone.now())


def strategy_exit(
    *,
    strategy_id: int,
    reason: Strategy.ExitReason,
    position: Position,
    at: datetime,
    strategy: Strategy | None = None,
    record_with: Callable[[Strategy], None] | None = None,
) -> bool:
    """The final exit (S5): SELL, stop-loss, rejection or safety abort. Returns False if
    the strategy had already ended (the caller lost the race and must do nothing).
    ``strategy``: the caller's copy, for what an exit does not change; without it the row
    is read again. ``record_with`` records what caused the exit (the order's L1) in S5's
    transaction, so that a crash can never leave one without the other."""
    with transaction.atomic():
        ended = strategy_transition(
            strategy_id=strategy_id,
            expected={"status__in": (Status.RUNNING, Status.STOPPED)},
            changes={"status": Status.EXITED, "position": position, "exit_reason": reason, "ended_at": at},
        )
        if not ended:
            return False
        if strategy is None or strategy.pk != strategy_id:
            strategy = Strategy.objects.get(pk=strategy_id)
        emit(Event.S5_STRATEGY_EXITED, strategy=strategy, payload={**_about(strategy), "reason": reason})
        if record_with is not None:
            record_with(strategy)
    slots.unschedule_strategy(strategy)
    runtime.runtime_clear(strategy)
    return True
