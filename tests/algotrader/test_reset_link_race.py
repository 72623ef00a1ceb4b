"""Ten simultaneous uses of one password reset link, over real HTTP against a threaded
server and PostgreSQL: exactly one of them sets the password."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.contrib.auth.tokens import default_token_generator
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

CONCURRENT = 10


@pytest.mark.django_db(transaction=True)
def test_concurrent_uses_of_one_reset_link_set_the_password_once(live_server, user):
    link = {"uid": urlsafe_base64_encode(force_bytes(user.pk)), "token": default_token_generator.make_token(user)}
    start = threading.Barrier(CONCURRENT)

    def confirm(n: int) -> int:
        start.wait()
        body = {**link, "new_password": f"new passphrase number {n}"}
        url = f"{live_server.url}/api/v1/auth/password/reset/confirm/"
        return requests.post(url, json=body, timeout=30).status_code

    with ThreadPoolExecutor(CONCURRENT) as pool:
        statuses = list(pool.map(confirm, range(CONCURRENT)))

    assert statuses.count(204) == 1
    assert statuses.count(400) == CONCURRENT - 1
    user.refresh_from_db()
    assert user.check_password(f"new passphrase number {statuses.index(204)}")
