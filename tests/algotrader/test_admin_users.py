"""Operators list and find users in admin; a password is never shown beyond Django's
masked hash summary."""

import pytest
from django.test import Client

from algotrader.users.exceptions import InvalidToken
from algotrader.users.models import RefreshTokenRecord, User
from algotrader.users.services import token_refresh, tokens_issue
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator() -> Client:
    client = Client()
    client.force_login(UserFactory.create(email="ops@example.com", is_staff=True, is_superuser=True))
    return client


def test_the_user_list_takes_a_fixed_number_of_queries_and_finds_by_email(operator, django_assert_max_num_queries):
    User.objects.bulk_create(User(email=f"bulk{n}@example.com") for n in range(40))  # no password to hash
    wanted = UserFactory.create(email="needle@example.com")

    with django_assert_max_num_queries(8):
        listed = operator.get("/admin/users/user/")
    found = operator.get("/admin/users/user/", {"q": "NEEDLE"})

    assert listed.status_code == 200
    assert len(listed.context["cl"].result_list) == 42
    assert list(found.context["cl"].result_list) == [wanted]


def test_a_users_page_never_shows_the_password_hash(operator):
    user = UserFactory.create(password="a long passphrase for this test")
    algorithm, _iterations, salt, digest = user.password.split("$")

    page = operator.get(f"/admin/users/user/{user.pk}/change/")

    html = page.content.decode()
    assert page.status_code == 200
    assert user.password not in html
    assert salt not in html and digest not in html
    assert algorithm in html  # Django's summary: the algorithm and masked parts only


def test_an_operator_revokes_a_login_from_admin(operator, user):
    tokens = tokens_issue(user=user)
    record = RefreshTokenRecord.objects.get(user=user)

    response = operator.post(
        "/admin/users/refreshtokenrecord/", {"action": "revoke_families", "_selected_action": [record.pk]}
    )

    assert response.status_code == 302
    assert RefreshTokenRecord.objects.get(pk=record.pk).revoked_at is not None
    with pytest.raises(InvalidToken):
        token_refresh(refresh=tokens.refresh)
