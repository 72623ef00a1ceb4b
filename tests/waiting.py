"""The one way a test waits for a fact another process or thread brings about: poll it
until it holds, and fail with what was last seen (and the logs that explain it) if it
never does. A test never sleeps to let something happen."""

import os
import time
from collections.abc import Callable
from typing import Literal, TypeVar

from django.db import connection

T = TypeVar("T")

# Every deadline is multiplied by this: a busy machine can be given more time without
# touching a test (TEST_WAIT_SCALE=2 make test).
SCALE = float(os.environ.get("TEST_WAIT_SCALE", "1"))


def wait_until(
    predicate: Callable[[], T | Literal[False] | None],
    *,
    timeout: float = 30,
    interval: float = 0.05,
    message: str | Callable[[], str] = "",
) -> T:
    """Poll ``predicate`` until it returns something truthy and return that (typed without
    the ``None`` or ``False`` it returns meanwhile). On timeout, raise ``AssertionError``
    with ``message`` (a callable is called then: a process's log tail) and the last value."""
    deadline = time.monotonic() + timeout * SCALE
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            why = message() if callable(message) else message
            raise AssertionError(f"not met within {timeout * SCALE:g} s: {why}\nlast value: {value!r}")
        time.sleep(interval)


def other_sessions_ended() -> bool:
    """No session but this one on the test database: PostgreSQL ends a stopped process's
    session a moment after it exits, and the database can be flushed (TRUNCATE) or dropped
    only once they are gone."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        row = cursor.fetchone()
    return row is not None and row[0] == 0
