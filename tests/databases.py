"""A database of its own for a test that starts whole processes (the Procfile, as `make run`
does) against the test server: created empty before and dropped after, so that what those
processes migrate and write never reaches the test database pytest-django manages."""

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

from psycopg import sql

from algotrader.devservers import postgres_connect, postgres_params
from algotrader.processes import DEFAULT_DATABASE_URL


@contextmanager
def throwaway_database(server_url: str | None = None) -> Iterator[str]:
    """The URL of a new empty database on the server of ``server_url`` (the DATABASE_URL
    the tests run with), dropped on exit even while a process still holds a connection."""
    base = server_url or os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    name = f"throwaway_{secrets.token_hex(6)}"
    with postgres_connect(base, "postgres") as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = urlunsplit(urlsplit(base)._replace(path=f"/{name}"))
    try:
        yield url
    finally:
        database_drop(url)


def database_drop(url: str) -> None:
    """Drop the database of ``url`` if it exists, ending the sessions still connected to it."""
    name = postgres_params(url)["dbname"]
    with postgres_connect(url, "postgres") as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
