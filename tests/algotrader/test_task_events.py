"""Task events, what Flower shows, from the Procfile's orders worker on the real broker:
every task's received, started and succeeded events arrive, a buffer of them at a time
(``algotrader.worker_consumer``), not one publish each."""

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from celery.events.receiver import EventReceiver

from algotrader.celery import app
from monitoring.tasks import beat_heartbeat_task
from tests.execution.workers import procfile_worker
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TASKS = 60


@dataclass
class Captured:
    events: dict[str, set[str]] = field(default_factory=dict)  # task id -> event types
    buffers: int = 0  # task.multi messages received: a buffer of task events each
    buffered_events: int = 0  # the events they carried
    worker_seen: threading.Event = field(default_factory=threading.Event)


class CountingReceiver(EventReceiver):
    """Counts the buffers of task events as well as the events they carry."""

    captured: Captured

    def _receive(self, body: Any, message: Any, **kwargs: Any) -> None:
        if isinstance(body, list):
            self.captured.buffers += 1
            self.captured.buffered_events += len(body)
        super()._receive(body, message, **kwargs)  # type: ignore[misc]  # absent from celery-types


@pytest.fixture
def captured() -> Iterator[Captured]:
    captured = Captured()

    def on_event(event: dict[str, Any]) -> None:
        if event["type"].startswith("worker-"):
            captured.worker_seen.set()
        elif "uuid" in event:
            captured.events.setdefault(event["uuid"], set()).add(event["type"])

    with app.connection_for_read() as connection:
        receiver = CountingReceiver(connection, handlers={"*": on_event}, app=app)
        receiver.captured = captured
        thread = threading.Thread(target=receiver.capture, kwargs={"wakeup": True}, daemon=True)
        thread.start()
        try:
            yield captured
        finally:
            receiver.should_stop = True
            thread.join(timeout=10)


def test_every_task_s_events_reach_flower_a_buffer_at_a_time(captured: Captured, tmp_path: Path) -> None:
    # A flush a second at most: on a loaded machine a slow trickle of tasks must not make
    # the timer, rather than the buffering, decide how many events a message carries.
    with procfile_worker("worker", tmp_path / "worker.log", {"TASK_EVENTS_FLUSH_SECONDS": "1"}) as worker:
        wait_until(captured.worker_seen.is_set, message=worker.text, timeout=30)
        buffers_before, events_before = captured.buffers, captured.buffered_events
        with app.producer_or_acquire() as producer, producer.batch(max_size=TASKS):
            ids = [beat_heartbeat_task.apply_async(producer=producer).id for _ in range(TASKS)]

        def all_succeeded() -> bool:
            return all("task-succeeded" in captured.events.get(task_id, ()) for task_id in ids)

        wait_until(all_succeeded, message=worker.text, timeout=60)

    assert {task_id: captured.events[task_id] for task_id in ids} == {
        task_id: {"task-sent", "task-received", "task-started", "task-succeeded"} for task_id in ids
    }
    # The worker's received, started and succeeded events came a buffer at a time (up to
    # 24, or what TASK_EVENTS_FLUSH_SECONDS gathered), not about one publish a task, which
    # averaged under three events a message.
    buffers, events = captured.buffers - buffers_before, captured.buffered_events - events_before
    assert events >= 3 * TASKS
    assert events / buffers >= 6, (events, buffers)
