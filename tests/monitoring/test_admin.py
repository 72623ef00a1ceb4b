"""The monitoring admin: the event log read-only, filtered by code, strategy, user and
order, in a number of queries that does not grow with the rows shown and with no full
count; alerts listed open or resolved, and resolved by an action that tells operators."""

import pytest
from django.test import Client

from monitoring.events import Event
from monitoring.models import Alert, EventLog
from monitoring.services import Emission, alert_raise, emit_many
from tests.factories import UserFactory
from tests.strategies.factories_scheduling import strategy_create

pytestmark = pytest.mark.django_db

EVENTS = "/admin/monitoring/eventlog/"
ALERTS = "/admin/monitoring/alert/"


@pytest.fixture
def operator() -> Client:
    client = Client()
    client.force_login(UserFactory.create(is_staff=True, is_superuser=True))
    return client


def some_events(count: int) -> int:
    """``count`` events of one new strategy; returns the strategy's id."""
    from django.utils import timezone

    strategy = strategy_create(buy_fire_at=timezone.now(), sell_fire_at=timezone.now())
    emit_many(
        [
            Emission(Event.T1_BUY_TRIGGERED if n % 2 else Event.L4_ALERT_TRIGGERED, strategy.owner_id, strategy.pk)
            for n in range(count)
        ]
    )
    return strategy.pk


def test_the_event_list_costs_the_same_queries_for_10_or_100_rows_and_never_counts_the_table(operator):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    some_events(10)
    with CaptureQueriesContext(connection) as few:
        assert operator.get(EVENTS).status_code == 200
    some_events(90)
    with CaptureQueriesContext(connection) as many:
        response = operator.get(EVENTS)

    assert response.status_code == 200 and len(response.context["cl"].result_list) == 100
    assert len(many) == len(few)
    full_counts = [q["sql"] for q in many if "COUNT(*)" in q["sql"] and "LIMIT" not in q["sql"]]
    assert full_counts == []


def test_the_event_list_filters_by_code_strategy_and_user(operator):
    from django.utils import timezone

    mine = strategy_create(buy_fire_at=timezone.now(), sell_fire_at=timezone.now())
    other = strategy_create(buy_fire_at=timezone.now(), sell_fire_at=timezone.now())
    emit_many(
        [
            Emission(Event.T1_BUY_TRIGGERED, mine.owner_id, mine.pk),
            Emission(Event.L4_ALERT_TRIGGERED, mine.owner_id, mine.pk),
            Emission(Event.T1_BUY_TRIGGERED, other.owner_id, other.pk),
        ]
    )

    def shown(query: str) -> list[tuple[str, int]]:
        response = operator.get(EVENTS + query)
        assert response.status_code == 200
        return sorted((e.code, e.strategy_id) for e in response.context["cl"].result_list)

    assert shown("?code=T1") == [("T1", mine.pk), ("T1", other.pk)]
    assert shown(f"?strategy={mine.pk}") == [("L4", mine.pk), ("T1", mine.pk)]
    assert shown(f"?user={other.owner_id}") == [("T1", other.pk)]
    assert shown(f"?code=L4&user={other.owner_id}") == []


def test_the_event_log_cannot_be_added_to_edited_or_deleted(operator):
    # Its own record: a process an earlier live test started may still be recording events.
    record = EventLog.objects.get(strategy_id=some_events(1))

    assert operator.get(EVENTS + "add/").status_code == 403
    page = operator.get(f"{EVENTS}{record.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert operator.post(f"{EVENTS}{record.pk}/delete/", {"post": "yes"}).status_code == 403
    assert EventLog.objects.filter(pk=record.pk).exists()


def test_alerts_list_open_ones_and_an_action_resolves_them(operator, settings):
    settings.ALERT_EMAILS = []
    settings.ALERT_WEBHOOK_URL = ""
    first = alert_raise(kind="safety_abort", key="account:1", message="stopped")
    second = alert_raise(kind="missing_price_feed", key="NSE:INFY", message="no ticks")
    assert first is not None and second is not None

    listed = operator.get(ALERTS + "?state=open")
    response = operator.post(ALERTS, {"action": "resolve", "_selected_action": [first.pk]}, follow=True)

    assert {a.pk for a in listed.context["cl"].result_list} == {first.pk, second.pk}
    assert response.status_code == 200
    first.refresh_from_db()
    assert first.resolved_at is not None and first.resolution.startswith("resolved by ")
    assert [a.pk for a in operator.get(ALERTS + "?state=open").context["cl"].result_list] == [second.pk]
    assert [a.pk for a in operator.get(ALERTS + "?state=resolved").context["cl"].result_list] == [first.pk]
    assert EventLog.objects.filter(code="L4", payload__state="resolved", payload__alert_id=first.pk).exists()
    assert Alert.objects.count() == 2
