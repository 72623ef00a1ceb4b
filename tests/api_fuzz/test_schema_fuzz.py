"""Schema-driven fuzzing of every operation (schemathesis): whatever a client sends, valid or
not, the answer is never a 5xx and conforms to the schema (status, content type, body, headers).
A fixed seed and a bounded number of examples per operation keep it fast and repeatable. One
check is left out: "schema-valid data is accepted" cannot hold where a rule lives beyond the
schema (a password's strength, a paper account taking no credentials) and is answered by a 400."""

from collections.abc import Iterator

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework_simplejwt.tokens import RefreshToken
from schemathesis.checks import positive_data_acceptance

from tests.brokers.kite_sim_fixtures import kite_sim  # noqa: F401
from tests.factories import UserFactory

EXAMPLES_PER_OPERATION = 8

schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", get_wsgi_application())


@pytest.fixture(autouse=True)
def connections_kept_open() -> Iterator[None]:
    """The WSGI handler closes the database connection after each request, the test's own
    transaction with it; Django's test client keeps it open the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture(autouse=True)
def kite_is_the_simulator(settings, kite_sim) -> None:  # noqa: F811
    # Credentials submitted for a Kite account are checked with the broker: the simulator's.
    settings.KITE_API_ROOT = kite_sim.api_root
    settings.KITE_WS_ROOT = kite_sim.ws_root


@pytest.fixture
def bearer(db: None) -> dict[str, str]:
    user = UserFactory.create(password="correct horse battery staple")
    return {"Authorization": f"Bearer {RefreshToken.for_user(user).access_token}"}


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_operation_answers_5xx_or_off_schema(case, bearer):
    case.call_and_validate(headers=bearer, excluded_checks=[positive_data_acceptance])
