"""The workers' Celery consumer: Celery's own, except that task events (what Flower shows) go out
at most every ``TASK_EVENTS_FLUSH_SECONDS`` as one ``task.multi`` message, so a market-open burst
does not pay a publish per task (docs/benchmarks.md)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer
from django.conf import settings


class Consumer(CeleryConsumer):
    # Celery's, left out of celery-types' stubs.
    hub: Any
    _flush_events: Callable[[], None]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._events_flush_lock = threading.Lock()
        self._events_flush_since: float | None = None  # a flush is scheduled since then

    def on_send_event_buffered(self) -> None:  # type: ignore[override]  # the stubs say it returns a callable
        """Called by the event dispatcher, from any thread, for each task event it buffers
        (it publishes a full buffer, 24 events, at once by itself)."""
        if not self.hub:
            return
        now = time.monotonic()
        with self._events_flush_lock:
            since = self._events_flush_since
            # A flush scheduled long ago was lost with the timers of a broker reconnection.
            if since is not None and now - since < 10 * settings.TASK_EVENTS_FLUSH_SECONDS + 1:
                return
            self._events_flush_since = now
        # call_soon is the hub's thread-safe entry; the timer is the loop thread's own.
        self.hub.call_soon(self._events_flush_later)

    def _events_flush_later(self) -> None:
        self.hub.call_later(settings.TASK_EVENTS_FLUSH_SECONDS, self._events_flush)

    def _events_flush(self) -> None:
        with self._events_flush_lock:
            self._events_flush_since = None
        self._flush_events()
