"""E1, the entry: the strategy's lock, the BUY's window (the late policy), the run's
readiness (one read; a run not ready is checked again, then skipped) and the entry halt
asked, the risk limits checked in the claim's transaction, the claim RUNNING & NONE ->
BUYING committed with a PENDING BUY, then the order placed, its fill followed, and the
position opened (``outcomes``)."""

from __future__ import annotations

from functools import partial

from execution.exceptions import RiskLimitExceeded
from execution.models import Order
from execution.services import risk, safety
from execution.services.claims import Position, Status, position_claim, strategy_about, strategy_locked, strategy_read
from execution.services.exits import follow_hand_off
from execution.services.outcomes import order_execute
from execution.services.settlement import position_resume
from monitoring.events import Event
from monitoring.services import alert_raise, emit
from strategies import readiness, scheduling
from strategies.buy_window import buy_valid_until, buy_window_open


def strategy_buy_execute(*, strategy_id: int, hand_off: bool = False) -> Order | None:
    """E1: claim RUNNING & NONE -> BUYING with a PENDING BUY, place it, follow it, then
    BOUGHT (stop armed) or back to NONE and the strategy ends (rejected). ``hand_off`` (the
    task's way): once the broker accepts the BUY, ``position_follow`` follows it with the lock
    on another task, as a stop-loss's exit, and this worker's slot takes the next BUY."""
    strategy = strategy_read(strategy_id)
    if strategy is None:
        return None
    emit(Event.E1_EXECUTE_BUY, strategy=strategy, payload=strategy_about(strategy))
    with strategy_locked(strategy, kind="BUY", wait=False) as held:
        if not held:
            return None
        valid_until = buy_valid_until(strategy.buy_fire_at)
        if not buy_window_open(valid_until=valid_until):
            alert_raise(
                kind="buy_late",
                key=f"strategy:{strategy.pk}",
                severity="warning",
                strategy=strategy,
                message="BUY refused: it arrived after its grace window",
                payload={**strategy_about(strategy), "valid_until": valid_until.isoformat()},
            )
            scheduling.strategies_end_unbought(strategy_ids=[strategy.pk])  # the late policy: nothing left to do
            return None
        if readiness.run_buy_gate(strategy=strategy) is not None:
            # Still not ready at its BUY time (R2 recorded): nothing was placed, the run ends.
            scheduling.strategies_end_unbought(strategy_ids=[strategy.pk])
            return None
        if held.lock is not None:
            held.lock.keepalive()  # a run checked again took broker calls under the lock
        halt = safety.entries_halted(account=strategy.broker_account)
        if halt is not None:
            alert_raise(
                kind="entries_halted",
                key=f"strategy:{strategy.pk}",
                severity="warning",
                strategy=strategy,
                message=f"BUY refused: new entries are halted ({halt.reason})",
                payload=strategy_about(strategy),
            )
            return None
        try:
            order = position_claim(
                strategy,
                expected={"status": Status.RUNNING, "position": Position.NONE},
                changes={"position": Position.BUYING},
                reason=Order.Reason.BUY,
                valid_until=valid_until,
                check=partial(risk.buy_risk_check, strategy),
            )
        except RiskLimitExceeded as refusal:
            risk.buy_refuse(strategy, refusal)
            return None
        if order is None:
            return position_resume(strategy, Order.Side.BUY, lock=held.lock)
        return order_execute(
            strategy, order, lock=held.lock, hand_off=follow_hand_off(strategy, held.lock) if hand_off else None
        )
