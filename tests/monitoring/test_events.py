"""The event catalogue holds every EVENT-MAP code; emit records and pushes them."""

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from monitoring.events import Category, Event
from monitoring.models import EventLog
from monitoring.pusher import user_group
from monitoring.services import emit

EVENT_MAP_CODES = (
    [f"U{i}" for i in range(1, 8)]
    + [f"S{i}" for i in range(1, 6)]
    + [f"T{i}" for i in range(1, 4)]
    + [f"M{i}" for i in range(1, 5)]
    + [f"E{i}" for i in range(1, 6)]
    + [f"B{i}" for i in range(1, 7)]
    + [f"X{i}" for i in range(1, 6)]
    + [f"L{i}" for i in range(1, 5)]
)


EXTENSION_CODES = [f"P{i}" for i in range(1, 6)] + ["R1", "R2", "G1", "G2"]


def test_catalogue_holds_exactly_the_event_map_codes_and_the_extensions():
    assert sorted(event.code for event in Event) == sorted(EVENT_MAP_CODES + EXTENSION_CODES)
    assert len(EVENT_MAP_CODES) == 39


def test_member_names_carry_code_and_label():
    for event in Event:
        assert event.name == f"{event.code}_{event.label}"
        assert Event.by_code(event.code) is event


def test_stoploss_outranks_sell():
    assert Event.M2_STOPLOSS_TRIGGERED.priority < Event.T2_SELL_TRIGGERED.priority
    assert Event.E3_EXECUTE_STOPLOSS.priority < Event.E2_EXECUTE_SELL.priority
    assert Event.M2_STOPLOSS_TRIGGERED.category is Category.MARKET


@pytest.mark.django_db(transaction=True)
def test_emit_records_a_row_and_pushes_user_visible_events(user):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(user_group(user.pk), channel)

    record = emit(Event.S1_STRATEGY_STARTED, user=user, message="started", payload={"strategy_id": 7})
    pushed = async_to_sync(layer.receive)(channel)

    assert EventLog.objects.get(pk=record.pk).code == "S1"
    assert pushed["type"] == "event.message"
    assert pushed["event"]["code"] == "S1"
    assert pushed["event"]["payload"] == {"strategy_id": 7}


@pytest.mark.django_db
def test_emit_logs_one_json_line(user, caplog):
    with caplog.at_level("INFO", logger="algotrader.events"):
        emit(Event.U2_USER_LOGGED_IN, user=user)

    [line] = [r for r in caplog.records if r.name == "algotrader.events"]
    assert line.event == "U2"
    assert line.user_id == user.pk
