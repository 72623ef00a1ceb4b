"""The suite runs on several pytest-xdist workers (`make test`): each must have a Redis
database and a PostgreSQL test database of its own, which the processes its tests start
inherit, or one worker's flush would wipe another's queues mid-test."""

import os

import execnet
import pytest
from django.db import connection

from tests.conftest import pytest_xdist_setupnodes


def test_each_worker_gets_its_own_redis_database_counting_down_from_the_given_one(settings, pytestconfig):
    settings.REDIS_URL = "redis://127.0.0.1:6379/15"
    specs = [execnet.XSpec("popen") for _ in range(3)]

    pytest_xdist_setupnodes(pytestconfig, specs)

    assert [spec.env["REDIS_URL"] for spec in specs] == [f"redis://127.0.0.1:6379/{db}" for db in (15, 14, 13)]


def test_workers_that_would_reach_database_zero_are_refused(settings, pytestconfig):
    settings.REDIS_URL = "redis://127.0.0.1:6379/2"
    specs = [execnet.XSpec("popen") for _ in range(3)]

    with pytest.raises(pytest.UsageError, match="too few"):
        pytest_xdist_setupnodes(pytestconfig, specs)
    assert not any(spec.env for spec in specs)


@pytest.mark.django_db
def test_this_process_and_what_it_starts_use_this_workers_databases(settings, pytestconfig):
    # The environment is what subprocesses inherit; the settings are what this process uses.
    assert os.environ["REDIS_URL"] == settings.REDIS_URL
    workerinput = getattr(pytestconfig, "workerinput", None)
    if workerinput is not None:
        assert connection.settings_dict["NAME"].endswith(f"_{workerinput['workerid']}")
