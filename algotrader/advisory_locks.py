"""PostgreSQL advisory locks, the one helper for them, each named by a space (a constant beside
its user) and a key. Session locks are freed when the holder's connection ends, so a process
that dies never leaves one behind."""

import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DatabaseError, connection

_POLL_SECONDS = 0.1


@contextmanager
def session_lock(space: int, key: int = 0, *, wait_seconds: float = 0.0) -> Iterator[bool]:
    """Hold the session lock (``space``, ``key``) for the block if it can be had within
    ``wait_seconds`` (0: one try); yields whether it is held. A failed unlock closes the
    connection, which frees the lock, rather than leave it held for every later caller."""
    deadline = time.monotonic() + wait_seconds
    while True:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [space, key])
            (held,) = cursor.fetchone()
        if held or time.monotonic() >= deadline:
            break
        time.sleep(_POLL_SECONDS)
    try:
        yield bool(held)
    finally:
        if held:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [space, key])
            except DatabaseError:
                connection.close()
                raise


def transaction_lock(space: int, key: int = 0) -> None:
    """Wait for and take the lock (``space``, ``key``) until the current transaction ends
    (the caller is inside ``transaction.atomic``)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [space, key])


def lock_held(space: int, key: int = 0) -> bool:
    """Whether any session holds the lock (``space``, ``key``) now, read from ``pg_locks``
    rather than by trying it, which would make a holder starting at that moment miss it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = %s AND objid = %s AND objsubid = 2 AND database ="
            " (SELECT oid FROM pg_database WHERE datname = current_database()))",
            [space, key],
        )
        (held,) = cursor.fetchone()
    return bool(held)
