"""The web process under a crowd keeps to its pool of database connections: under ASGI each
request runs in a thread of its own, and with persistent connections every thread kept one
until PostgreSQL refused new clients (a burst of logins did it to the shared test server)."""

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from django.db import OperationalError, connection
from psycopg_pool import PoolTimeout
from rest_framework_simplejwt.tokens import RefreshToken

from algotrader.api.exception_handler import api_exception_handler
from algotrader.processes import ProcessGroup, free_port, procfile_command
from tests.factories import UserFactory
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

POOL = 3
CROWD = 24


def server_sessions() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0


@pytest.fixture
def web(tmp_path: Path) -> Iterator[str]:
    parts = urlsplit(os.environ["DATABASE_URL"])
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"])),
        "DATABASE_POOL_MAX_SIZE": str(POOL),
        "WEB_PORT": str(port),
    }
    group = ProcessGroup(tmp_path, env)
    group.start("web", procfile_command("web", env))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(f"{url}/healthz"), timeout=60, interval=0.2, message=group.logs)
        yield url
    finally:
        group.stop_all()
        wait_until(lambda: server_sessions() == 0)  # the test database is flushed next


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_a_crowd_of_requests_holds_no_more_connections_than_the_pool(web):
    user = UserFactory.create()
    bearer = {"Authorization": f"Bearer {RefreshToken.for_user(user).access_token}"}

    def read(_: int) -> int:
        return requests.get(f"{web}/api/v1/strategies/", headers=bearer, timeout=30).status_code

    with ThreadPoolExecutor(max_workers=CROWD) as crowd:
        for _ in range(3):
            statuses = list(crowd.map(read, range(CROWD)))
            assert statuses == [200] * CROWD
            assert server_sessions() <= POOL


def test_a_request_that_waited_the_pool_s_whole_timeout_is_answered_503_busy_not_500():
    try:
        try:
            raise PoolTimeout("couldn't get a connection after 10.00 sec")
        except PoolTimeout as timeout:
            raise OperationalError(str(timeout)) from timeout
    except OperationalError as error:
        response = api_exception_handler(error, {})

    assert response is not None and response.status_code == 503
    assert response.data["error"]["code"] == "database_busy" and response["Retry-After"] == "1"
