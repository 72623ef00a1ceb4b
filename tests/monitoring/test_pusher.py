"""The process's WebSocket pusher: ``emit`` hands user-visible events to one long-lived
thread that sends them in order over its own warm channel-layer connection; a failing or
backed-up layer drops pushes, never the events they report; a forked worker process
gets a pusher of its own."""

import os
import threading
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from monitoring import pusher
from monitoring.events import Event
from monitoring.models import EventLog
from monitoring.pusher import pushes_flush, user_group
from monitoring.services import emit

pytestmark = pytest.mark.django_db(transaction=True)


def subscribe(user_id: int) -> str:
    layer = get_channel_layer()
    channel: str = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(user_group(user_id), channel)
    return channel


def receive(channel: str, count: int = 1) -> list[dict[str, Any]]:
    """The next ``count`` events on ``channel``, read in one event loop (channels_redis
    keeps a process-local channel's receive buffer per loop)."""
    layer = get_channel_layer()

    async def read() -> list[dict[str, Any]]:
        return [(await layer.receive(channel))["event"] for _ in range(count)]

    return async_to_sync(read)()


def pusher_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "websocket-pusher"]


def test_pushes_arrive_in_the_order_emitted_from_one_long_lived_thread(user):
    channel = subscribe(user.pk)

    for n in range(40):
        emit(Event.S3_STRATEGY_RUNNING, user=user, payload={"n": n})
    assert pushes_flush(timeout=30)

    assert [event["payload"]["n"] for event in receive(channel, 40)] == list(range(40))
    assert len(pusher_threads()) == 1


def test_a_push_that_fails_never_undoes_its_event_and_later_pushes_still_go(user, monkeypatch, caplog):
    class BrokenLayer:
        async def group_send(self, group: str, message: dict[str, Any]) -> None:
            raise ConnectionError("redis is gone")

    monkeypatch.setattr(pusher, "get_channel_layer", lambda: BrokenLayer())
    with caplog.at_level("WARNING", logger="algotrader.events"):
        record = emit(Event.S1_STRATEGY_STARTED, user=user, payload={"n": 1})
        assert pushes_flush(timeout=30)
    monkeypatch.undo()
    channel = subscribe(user.pk)
    emit(Event.S1_STRATEGY_STARTED, user=user, payload={"n": 2})

    assert EventLog.objects.filter(pk=record.pk).exists()
    assert any(r.getMessage() == "websocket push failed" for r in caplog.records)
    assert receive(channel)[0]["payload"] == {"n": 2}


def test_a_full_backlog_drops_the_push_and_keeps_the_event(user, monkeypatch, caplog):
    monkeypatch.setattr(pusher, "PUSH_BACKLOG_LIMIT", 0)

    with caplog.at_level("WARNING", logger="algotrader.events"):
        record = emit(Event.S1_STRATEGY_STARTED, user=user)

    assert EventLog.objects.filter(pk=record.pk).exists()
    assert pushes_flush(timeout=1)
    assert any(r.getMessage() == "websocket push dropped: backlog full" for r in caplog.records)


def test_pushes_wait_for_the_commit_of_the_transaction_that_emitted_them(user):
    from django.db import transaction

    channel = subscribe(user.pk)
    with transaction.atomic():
        emit(Event.S1_STRATEGY_STARTED, user=user, payload={"n": "rolled back"})
        transaction.set_rollback(True)
    emit(Event.S1_STRATEGY_STARTED, user=user, payload={"n": "committed"})

    assert receive(channel)[0]["payload"] == {"n": "committed"}


def test_a_forked_worker_process_pushes_through_a_pusher_of_its_own(user):
    channel = subscribe(user.pk)
    emit(Event.S3_STRATEGY_RUNNING, user=user, payload={"from": "parent"})  # the parent's thread is running
    assert pushes_flush(timeout=30)
    body = {"id": 0, "code": "S3", "name": "STRATEGY_RUNNING", "strategy_id": None, "message": "", "payload": {}}

    pid = os.fork()
    if pid == 0:  # the child: as a prefork Celery worker, with the parent's pusher object but no thread
        try:
            pusher.push_to_users([(user.pk, {**body, "payload": {"from": "child"}})])
            os._exit(0 if pushes_flush(timeout=30) else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    assert [event["payload"] for event in receive(channel, 2)] == [{"from": "parent"}, {"from": "child"}]


def test_only_users_with_a_socket_open_cost_a_group_send(monkeypatch):
    from tests.factories import UserFactory

    watching, away = UserFactory.create_batch(2)
    channel = subscribe(watching.pk)
    layer = get_channel_layer()
    sent_to: list[str] = []
    group_send = layer.group_send

    async def counting(group: str, message: dict[str, Any]) -> None:
        sent_to.append(group)
        await group_send(group, message)

    monkeypatch.setattr(layer, "group_send", counting)
    emit(Event.T1_BUY_TRIGGERED, user=away, payload={"n": 1})
    emit(Event.T1_BUY_TRIGGERED, user=watching, payload={"n": 2})
    assert pushes_flush(timeout=30)

    assert receive(channel)[0]["payload"] == {"n": 2}
    assert sent_to == [user_group(watching.pk)]
