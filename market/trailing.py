"""What follows a trailing stop out of the tick path, throttled: the tick script raises the stop in
``sl:`` on every new high, but the broker allows few modifications of the protective order
(Kite: 25 an order) and the database need not see every tick. So the consumer keeps, per
strategy, the newest move and sends it on (P4, the database record, the protective order's
move) at most once per ``TRAIL_MODIFY_MIN_SECONDS`` and only after ``TRAIL_MODIFY_MIN_BPS``."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings

from algotrader.celery import task_send
from algotrader.queues import TaskName
from market.ticks import TrailMove
from strategies.services import strategy_trail_record

logger = logging.getLogger(__name__)


@dataclass
class _Sent:
    at: float
    stop: float
    protective_moves: int


class TrailFollower:
    """One per tick consumer (the state is the process's: after a restart the next move is sent
    at once, and the protective side counts its order's modifications itself)."""

    def __init__(self) -> None:
        self._pending: dict[int, TrailMove] = {}
        self._sent: dict[int, _Sent] = {}

    def follow(self, moves: Iterable[TrailMove], *, now: float | None = None) -> list[TrailMove]:
        """Take this batch's moves and send those now due (of any batch); returns them."""
        for move in moves:
            self._pending[move.strategy_id] = move
        if not self._pending:
            return []
        now = time.monotonic() if now is None else now
        due = [move for move in self._pending.values() if self._due(move, now)]
        for move in due:
            del self._pending[move.strategy_id]
            self._send(move, now)
        return due

    def forget(self, strategy_ids: Iterable[int]) -> None:
        """The position's exit fired: its trail is over."""
        for strategy_id in strategy_ids:
            self._pending.pop(strategy_id, None)
            self._sent.pop(strategy_id, None)

    def _due(self, move: TrailMove, now: float) -> bool:
        sent = self._sent.get(move.strategy_id)
        if sent is None:
            return True
        if now - sent.at < settings.TRAIL_MODIFY_MIN_SECONDS:
            return False
        return bool((move.stop - sent.stop) * 10_000 >= settings.TRAIL_MODIFY_MIN_BPS * sent.stop)

    def _send(self, move: TrailMove, now: float) -> None:
        sent = self._sent.get(move.strategy_id)
        count = sent.protective_moves if sent is not None else 0
        self._sent[move.strategy_id] = _Sent(at=now, stop=move.stop, protective_moves=count)
        stop = Decimal(repr(move.stop))  # the float's shortest repr: the script rounded it to the paisa
        try:
            recorded = strategy_trail_record(
                strategy_id=move.strategy_id, high_price=Decimal(repr(move.high)), stop_price=stop
            )
        except Exception:  # the stop in Redis is what exits; a lost record is the next move's
            logger.exception("trailing stop not recorded", extra={"strategy_id": move.strategy_id})
            return
        if not recorded or count >= settings.TRAIL_MODIFY_MAX:
            return
        self._sent[move.strategy_id].protective_moves = count + 1
        try:
            # By name: the protective order is the execution engine's (above this layer).
            task_send(TaskName.MOVE_PROTECTIVE_STOP, args=(move.strategy_id, str(stop)))
        except Exception:
            logger.exception("protective stop move not sent", extra={"strategy_id": move.strategy_id})
