"""Schema-driven fuzzing of every operation (schemathesis): whatever a client sends, valid or
not, the answer is never a 5xx and conforms to the schema (status, content type, body, headers).
A fixed seed and a bounded number of examples per operation keep it fast and repeatable. One
check is left out: "schema-valid data is accepted" cannot hold where a rule lives beyond the
schema (a password's strength, a paper account taking no credentials) and is answered by a 400."""

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, connection
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test
from rest_framework_simplejwt.tokens import RefreshToken
from schemathesis.checks import ignored_auth, negative_data_rejection, positive_data_acceptance

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


STATEFUL_SCENARIOS = 12
STATEFUL_STEPS = 6


def _fresh_user_bearer() -> dict[str, str]:
    """Every table of ours emptied and its ids restarted (in the test's transaction), and one
    user made again: each scenario starts from the same state, so the ids its links carry are
    the same from one Hypothesis example to the next (it refuses generation that drifts)."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no deferred FK checks pending: TRUNCATE needs none
        cursor.execute("TRUNCATE users_user RESTART IDENTITY CASCADE")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    user = UserFactory.create(email="fuzz@example.com", password="correct horse battery staple")
    return {"Authorization": f"Bearer {RefreshToken.for_user(user).access_token}"}


@pytest.mark.django_db
def test_no_sequence_of_operations_answers_5xx_or_off_schema():
    """Stateful: schemathesis chains operations by the links it infers between them (a strategy
    created, then read, updated, started, stopped; an account created, read, deleted), so ids
    that exist are exercised, not only random ones."""

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            self.bearer = _fresh_user_bearer()

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": self.bearer}

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            # ignored_auth and negative_data_rejection: every step sends our valid token
            # (get_call_kwargs) whatever auth it generated, so a step generated without one is
            # answered as a valid request; the stateless test checks both.
            case.validate_response(
                response,
                excluded_checks=[positive_data_acceptance, ignored_auth, negative_data_rejection],
                transport_kwargs=kwargs or None,
            )

    run_state_machine_as_test(
        Workflow,
        settings=settings(
            max_examples=STATEFUL_SCENARIOS,
            stateful_step_count=STATEFUL_STEPS,
            derandomize=True,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
