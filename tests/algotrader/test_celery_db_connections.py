"""A worker keeps its database connection from one task to the next, as Django keeps one
from one request to the next: closed only past CONN_MAX_AGE or when unusable, never by
Celery's fixup around every task (which made each stop-loss connect before its first query)."""

import time
from types import SimpleNamespace

import pytest
from celery.fixups.django import DjangoWorkerFixup  # type: ignore[attr-defined]  # absent from celery-types
from django.db import connection

from algotrader.celery import app, close_old_database_connections

pytestmark = pytest.mark.django_db(transaction=True)


def task(*, eager: bool = False) -> SimpleNamespace:
    return SimpleNamespace(request=SimpleNamespace(is_eager=eager))


def open_connection() -> object:
    connection.ensure_connection()
    assert connection.connection is not None
    return connection.connection


def test_the_celery_fixup_no_longer_closes_the_connection_around_each_task():
    raw = open_connection()
    fixup = DjangoWorkerFixup(app)

    fixup.on_task_prerun(sender=task())
    fixup.on_task_postrun(sender=task())

    assert fixup.db_reuse_max and connection.connection is raw


def test_a_live_connection_is_kept_for_the_next_task():
    raw = open_connection()

    close_old_database_connections(sender=task())
    with connection.cursor() as cursor:  # the next task's first query: health-checked, then reused
        cursor.execute("SELECT 1")

    assert connection.connection is raw


def test_a_connection_past_its_max_age_is_closed_between_tasks():
    open_connection()
    connection.close_at = time.monotonic() - 1

    close_old_database_connections(sender=task())

    assert connection.connection is None


def test_an_eager_run_inside_the_callers_transaction_is_left_alone():
    raw = open_connection()
    connection.close_at = time.monotonic() - 1

    close_old_database_connections(sender=task(eager=True))

    assert connection.connection is raw
