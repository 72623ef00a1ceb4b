"""Twenty simultaneous refreshes of one refresh token, over real HTTP against a
threaded server and PostgreSQL: exactly one of them gets a new token pair."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from rest_framework_simplejwt.tokens import RefreshToken

from algotrader.users.models import RefreshTokenRecord
from algotrader.users.services import tokens_issue

CONCURRENT = 20


@pytest.mark.django_db(transaction=True)
def test_concurrent_refreshes_of_one_token_give_exactly_one_success(live_server, user):
    token = tokens_issue(user=user).refresh
    start = threading.Barrier(CONCURRENT)

    def refresh(_: int) -> int:
        start.wait()
        return requests.post(f"{live_server.url}/api/v1/auth/refresh/", json={"refresh": token}, timeout=30).status_code

    with ThreadPoolExecutor(CONCURRENT) as pool:
        statuses = list(pool.map(refresh, range(CONCURRENT)))

    assert statuses.count(200) == 1
    assert statuses.count(401) == CONCURRENT - 1
    used = RefreshTokenRecord.objects.get(jti=RefreshToken(token, verify=False)["jti"])  # type: ignore[arg-type]
    assert used.used_at is not None
