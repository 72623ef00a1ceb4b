"""Shared fixtures: every test starts with an empty Redis test database and cache,
and talks to the real PostgreSQL and Redis given by DATABASE_URL and REDIS_URL."""

from collections.abc import Iterator

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from algotrader.redis_client import get_redis
from tests.factories import UserFactory


def pytest_configure(config: pytest.Config) -> None:
    db = settings.REDIS_URL.rsplit("/", 1)[-1]
    if not db.isdigit() or db == "0":
        raise pytest.UsageError(
            f"REDIS_URL={settings.REDIS_URL} is not a test database: the tests flush it. "
            "Run them with `make test` (or set REDIS_URL=redis://127.0.0.1:6379/15)."
        )


@pytest.fixture(autouse=True)
def clean_redis() -> Iterator[None]:
    get_redis().flushdb()
    yield


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
