"""Shared fixtures: every test starts with an empty Redis test database and cache,
and talks to the real PostgreSQL and Redis given by DATABASE_URL and REDIS_URL."""

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from algotrader.redis_client import get_redis
from tests.factories import UserFactory

# The captured full log of the run must hold no secret the tests used (a find fails the run).
pytest_plugins = ["tests.monitoring.log_secrets"]


def pytest_configure(config: pytest.Config) -> None:
    redis_test_db(settings.REDIS_URL)
    settings.PASSWORD_HASHERS = ["tests.hashers.FewIterationsPBKDF2PasswordHasher"]


def redis_test_db(url: str) -> int:
    """The database number of a Redis URL the tests may flush (never 0, the default one)."""
    db = url.rsplit("/", 1)[-1]
    if not db.isdigit() or db == "0":
        raise pytest.UsageError(
            f"REDIS_URL={url} is not a test database: the tests flush it. "
            "Run them with `make test` (or set REDIS_URL=redis://127.0.0.1:6379/15)."
        )
    return int(db)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_setupnodes(config: pytest.Config, specs: list[Any]) -> None:
    """Each pytest-xdist worker gets a Redis database of its own (the given one, then one
    less per worker: 15, 14, 13 for `make test`), set in its environment before it loads
    the settings, so the processes a test starts inherit it. PostgreSQL needs nothing:
    pytest-django suffixes each worker's test database (test_<name>_gw0, _gw1...)."""
    base = redis_test_db(settings.REDIS_URL)
    if base - len(specs) < 0:
        raise pytest.UsageError(
            f"{len(specs)} workers need Redis databases {base} down to {base - len(specs) + 1}: "
            f"REDIS_URL={settings.REDIS_URL} leaves too few above 0"
        )
    prefix = settings.REDIS_URL.rsplit("/", 1)[0]
    for index, spec in enumerate(specs):
        # Kept by a worker started again in place of a crashed one (xdist reuses the spec).
        spec.env["REDIS_URL"] = f"{prefix}/{base - index}"


@pytest.fixture(autouse=True)
def clean_redis() -> Iterator[None]:
    get_redis().flushdb()
    yield
    from monitoring.pusher import pushes_flush

    pushes_flush(timeout=10)  # a test's WebSocket pushes land before the next test's flush


@pytest.fixture(autouse=True)
def fresh_broker_sessions() -> Iterator[None]:
    """Each test starts with no shared adapter and a new process HTTP session: connections
    one test left warm are not another's (tests count the connections they open)."""
    from brokers.adapters.registry import shared_adapters_clear

    shared_adapters_clear()
    yield


@pytest.fixture(autouse=True)
def market_calendar(request: pytest.FixtureRequest) -> None:
    """Transactional tests flush every table, the migration-seeded calendar included:
    put the seed back for every test that uses the database."""
    marker = request.node.get_closest_marker("django_db")
    uses_db = marker is not None or {"db", "transactional_db", "live_server"} & set(request.fixturenames)
    if not uses_db:
        return
    transactional = (marker is not None and marker.kwargs.get("transaction")) or "live_server" in request.fixturenames
    request.getfixturevalue("transactional_db" if transactional else "db")
    from strategies.calendar_seed import seed_market_calendar
    from strategies.models import MarketHoliday, MarketSession

    seed_market_calendar(MarketSession, MarketHoliday)


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def password() -> str:
    return "correct horse battery staple"


@pytest.fixture
def user(db: None, password: str):
    return UserFactory(password=password)


@pytest.fixture
def auth_client(user) -> APIClient:
    from rest_framework_simplejwt.tokens import RefreshToken

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client
