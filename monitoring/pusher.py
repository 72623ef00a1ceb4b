"""The process's WebSocket pusher: user-visible events go to their user's channel-layer
group after commit, from a daemon thread with an event loop of its own, so that no order
path waits on Redis for them and a dropped push never undoes the event it reports."""

import asyncio
import atexit
import logging
import os
import queue
import threading
from typing import Any

from channels.layers import get_channel_layer

logger = logging.getLogger("algotrader.events")

PUSH_CONCURRENCY = 32
# Batches waiting for the pusher beyond which new ones are dropped (Redis down or far behind).
PUSH_BACKLOG_LIMIT = 10_000
EXIT_FLUSH_SECONDS = 2.0


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


class _Pusher:
    """The process's one WebSocket pusher: one daemon thread with a long-lived event loop keeps the
    channel layer's Redis connection warm (its pools are per loop), keeps pushes in emit order,
    and keeps order paths from waiting. A killed process drops what is queued, which is safe:
    the EventLog row is the record and the app reloads its timeline on reconnect."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        # Also the state of a forked child: it inherits this object but not the thread.
        self._lock = threading.Condition()
        self._queue: queue.SimpleQueue[list[tuple[int, dict[str, Any]]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pending = 0  # batches handed over and not yet sent (or dropped)

    def submit(self, pushes: list[tuple[int, dict[str, Any]]]) -> None:
        with self._lock:
            if self._pending >= PUSH_BACKLOG_LIMIT:
                # Redis is gone or far behind: the pushes are the expendable part of an event.
                logger.warning("websocket push dropped: backlog full", extra={"events": len(pushes)})
                return
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="websocket-pusher", daemon=True)
                self._thread.start()
            self._pending += 1
        self._queue.put(pushes)

    def flush(self, timeout: float) -> bool:
        """Wait until everything handed over so far has been sent; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: self._pending == 0, timeout)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        while True:
            batches = [self._queue.get()]
            while True:  # whatever piled up meanwhile goes out together
                try:
                    batches.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                loop.run_until_complete(_send_all([push for batch in batches for push in batch]))
            except Exception:
                logger.warning("websocket push failed", extra={"events": sum(map(len, batches))}, exc_info=True)
            finally:
                with self._lock:
                    self._pending -= len(batches)
                    self._lock.notify_all()


async def _send_all(pushes: list[tuple[int, dict[str, Any]]]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    by_user: dict[int, list[dict[str, Any]]] = {}
    for user_id, body in await _to_connected_users(layer, pushes):
        by_user.setdefault(user_id, []).append(body)
    # A few users at a time (a fan-out of thousands must not open thousands of
    # connections), each user's events one after the other, in the order emitted.
    limit = asyncio.Semaphore(PUSH_CONCURRENCY)

    async def send(user_id: int, bodies: list[dict[str, Any]]) -> None:
        async with limit:
            for body in bodies:
                try:
                    await layer.group_send(user_group(user_id), {"type": "event.message", "event": body})
                except Exception:  # a dropped push must never undo the event it reports
                    logger.warning(
                        "websocket push failed", extra={"user_id": user_id, "event": body["code"]}, exc_info=True
                    )

    await asyncio.gather(*(send(user_id, bodies) for user_id, bodies in by_user.items()))


async def _to_connected_users(layer: Any, pushes: list[tuple[int, dict[str, Any]]]) -> list[tuple[int, dict[str, Any]]]:
    """The pushes whose user has a socket open (one pipelined EXISTS per Redis host on the
    channels_redis group keys), since most users have no app open when a burst of T1s or M2s
    is emitted. Other layers get every push."""
    group_key = getattr(layer, "_group_key", None)
    if group_key is None or not hasattr(layer, "consistent_hash") or not hasattr(layer, "connection"):
        return pushes
    by_host: dict[int, list[int]] = {}
    for user_id in {user_id for user_id, _ in pushes}:
        by_host.setdefault(layer.consistent_hash(user_group(user_id)), []).append(user_id)
    connected: set[int] = set()
    for host, user_ids in by_host.items():
        pipe = layer.connection(host).pipeline(transaction=False)
        for user_id in user_ids:
            pipe.exists(group_key(user_group(user_id)))
        connected.update(user_id for user_id, found in zip(user_ids, await pipe.execute(), strict=True) if found)
    return [push for push in pushes if push[0] in connected]


_pusher = _Pusher()
os.register_at_fork(after_in_child=_pusher._reset)
atexit.register(lambda: _pusher.flush(EXIT_FLUSH_SECONDS))


def push_to_users(pushes: list[tuple[int, dict[str, Any]]]) -> None:
    """Hand a batch of pushes (user id, event body) to this process's pusher."""
    _pusher.submit(pushes)


def pushes_flush(*, timeout: float = 5.0) -> bool:
    """Wait for this process's pushes handed over so far to be sent (tests, shutdown)."""
    return _pusher.flush(timeout)
