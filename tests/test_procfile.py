"""The whole Procfile comes up as `make run` starts it, on a throwaway database of the test
server and a fresh run folder (real Redis): every process starts and stays up,
/healthz answers, Flower asks for its login, and every Celery worker of the formation
answers (two orders workers)."""

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from celery import Celery

from algotrader.processes import ProcessGroup, free_port, honcho_concurrency
from tests.databases import throwaway_database

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = ["web", "worker", "stoploss", "beat", "market", "orderupdates", "ticks", "scheduler", "flower", "notify"]


def wait_for(url: str, deadline: float, **kwargs) -> requests.Response:
    while True:
        try:
            return requests.get(url, timeout=2, **kwargs)
        except (requests.ConnectionError, requests.Timeout):  # up, or busy starting on a loaded machine
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@pytest.fixture
def database_url() -> Iterator[str]:
    with throwaway_database() as url:
        yield url


@pytest.fixture
def stack(tmp_path: Path, database_url: str) -> Iterator[dict[str, str]]:
    venv_bin = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PATH": f"{venv_bin}:{os.environ['PATH']}",
        "RUN_DIR": str(tmp_path / "run"),
        "WEB_PORT": str(free_port()),
        "FLOWER_PORT": str(free_port()),
        "FLOWER_BASIC_AUTH": "operator:flower-test-password",
        "ORDERS_CONCURRENCY": "1",
        "STOPLOSS_CONCURRENCY": "1",
        "THROTTLE_AUTH_PER_IP": "3/min",
        "TRUSTED_PROXY_COUNT": "0",
    }
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")
    group = ProcessGroup(tmp_path, env)
    group.start("migrate", [sys.executable, "manage.py", "migrate", "--noinput"])
    assert group.processes["migrate"].wait(timeout=120) == 0, group.log("migrate")
    honcho = group.start("honcho", [f"{venv_bin}/honcho", "-e", str(empty_env_file), "start", *honcho_concurrency(env)])
    try:
        yield {**env, "log": str(group.log_path("honcho")), "pid": str(honcho.pid)}
    finally:
        group.stop_all(timeout=30)


@pytest.mark.slow
def test_every_procfile_process_starts_and_stays_up(stack):
    deadline = time.monotonic() + 90
    web = f"http://127.0.0.1:{stack['WEB_PORT']}"
    flower = f"http://127.0.0.1:{stack['FLOWER_PORT']}"

    health = wait_for(f"{web}/healthz", deadline)
    try:
        # The first schema is generated on demand: seconds on a loaded machine.
        schema = requests.get(f"{web}/api/v1/schema/", timeout=30)
    except requests.RequestException as error:
        pytest.fail(f"{error!r}\n{Path(stack['log']).read_text()}")
    flower_anonymous = wait_for(f"{flower}/", deadline)
    flower_operator = requests.get(f"{flower}/", auth=("operator", "flower-test-password"), timeout=10)
    celery = Celery(broker=stack["REDIS_URL"])
    replies: list[dict[str, object]] = []
    while len(replies) < 5 and time.monotonic() < deadline:
        replies = celery.control.ping(timeout=1.0) or []
    # No proxy is trusted: a client on loopback that claims other addresses is still one address.
    spoofed = [
        requests.post(
            f"{web}/api/v1/auth/login/",
            json={"email": f"spoof{i}@example.com", "password": "not the password"},
            headers={"X-Forwarded-For": f"203.0.113.{i}"},
            timeout=10,
        ).status_code
        for i in range(4)
    ]
    time.sleep(8)  # past the 5 s idle timeouts (Redis blocking reads) a process could die of
    log = Path(stack["log"]).read_text()

    assert health.status_code == 200, log
    assert health.json() == {"status": "ok", "database": "ok", "redis": "ok"}
    assert schema.status_code == 200
    assert spoofed == [401, 401, 401, 429]
    assert flower_anonymous.status_code == 401
    assert flower_operator.status_code == 200
    assert sorted(name.split("@")[0] for reply in replies for name in reply) == [
        "notifications",
        "orders-worker.1",
        "orders-worker.2",  # the formation's second orders worker, under a name of its own
        "scheduler",
        "stoploss",
    ], log
    for process in PROCESSES:
        assert f"{process}.1 started" in log, f"{process} never started:\n{log}"
    assert "worker.2 started" in log, log
    assert "stopped (rc=" not in log and "exited with code" not in log, log
    assert os.waitpid(int(stack["pid"]), os.WNOHANG) == (0, 0), log
