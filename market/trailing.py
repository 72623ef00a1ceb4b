"""What follows a trailing stop out of the tick path, throttled: the tick script raises the stop in
``sl:`` on every new high, but the broker allows few modifications of the protective order
(Kite: 25 an order) and the database need not see every tick. So the consumer keeps, per
strategy, the newest move and sends it on (its record with P4, as a task that then sends the
protective order's move once the stop is stored) at most once per ``TRAIL_MODIFY_MIN_SECONDS``
and only after ``TRAIL_MODIFY_MIN_BPS``."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings

from algotrader.celery import app, task_send
from algotrader.queues import TaskName
from market.ticks import TrailMove


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
        if due:
            self._send(due, now)  # raising: what was due stays pending for the next batch
            for move in due:
                del self._pending[move.strategy_id]
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

    def _send(self, due: list[TrailMove], now: float) -> None:
        """The record (P4, then the protective order's move), as a task: a record is a database
        write, which the tick path never waits for. One kombu batch for all of a batch's."""
        with app.producer_or_acquire() as producer, producer.batch():
            for move in due:
                sent = self._sent.get(move.strategy_id)
                count = sent.protective_moves if sent is not None else 0
                protect = count < settings.TRAIL_MODIFY_MAX
                self._sent[move.strategy_id] = _Sent(at=now, stop=move.stop, protective_moves=count + protect)
                # The floats' shortest reprs: the script rounded the stop to the paisa.
                high, stop = repr(move.high), repr(move.stop)
                # The record sends the protective order's move once the raised stop is stored, so
                # the move (which follows the stored stop) never runs ahead of it.
                task_send(TaskName.RECORD_TRAIL, args=(move.strategy_id, high, stop, protect), producer=producer)
