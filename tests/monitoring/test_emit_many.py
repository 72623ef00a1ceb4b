"""emit_many records a batch as emit records one: one INSERT for the rows, a JSON log
line per event, and the user-visible ones pushed after commit."""

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from monitoring.events import Event
from monitoring.models import EventLog
from monitoring.pusher import user_group
from monitoring.services import Emission, emit_many
from tests.factories import UserFactory


@pytest.mark.django_db
def test_a_batch_is_one_insert_and_one_log_line_per_event(caplog, django_assert_num_queries):
    users = UserFactory.create_batch(2)
    emissions = [
        Emission(Event.T1_BUY_TRIGGERED, user_id=users[0].pk, payload={"strategy_id": 1}),
        Emission(Event.L4_ALERT_TRIGGERED, user_id=users[1].pk, message="late"),
        Emission(Event.X1_RUNTIME_STATE_LOADED),
    ]

    # One INSERT for the events, and one for what follows them: the user's L4 notification.
    with caplog.at_level("INFO", logger="algotrader.events"), django_assert_num_queries(2):
        records = emit_many(emissions)

    assert [r.code for r in EventLog.objects.order_by("id")] == ["T1", "L4", "X1"]
    assert [r.pk for r in records] == list(EventLog.objects.order_by("id").values_list("pk", flat=True))
    lines = [r for r in caplog.records if r.name == "algotrader.events"]
    assert [line.event for line in lines] == ["T1", "L4", "X1"]
    assert [line.user_id for line in lines] == [users[0].pk, users[1].pk, None]


@pytest.mark.django_db(transaction=True)
def test_user_visible_events_of_a_batch_are_pushed_to_each_user():
    users = UserFactory.create_batch(2)
    layer = get_channel_layer()
    channels = []
    for user in users:
        channel = async_to_sync(layer.new_channel)()
        async_to_sync(layer.group_add)(user_group(user.pk), channel)
        channels.append(channel)

    emit_many([Emission(Event.T1_BUY_TRIGGERED, user_id=user.pk, payload={"n": n}) for n, user in enumerate(users)])

    pushed = [async_to_sync(layer.receive)(channel)["event"] for channel in channels]
    assert [(event["code"], event["payload"]) for event in pushed] == [("T1", {"n": 0}), ("T1", {"n": 1})]
