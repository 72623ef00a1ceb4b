"""The whole Procfile as `make run` starts it: every process writes JSON lines only,
/readyz turns ready once beat and both workers have beaten, and /metrics adds up the
counts of every process (the listener's B5 is counted in the web process's answer)."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from algotrader.processes import honcho_concurrency
from tests.databases import throwaway_database

ROOT = Path(__file__).resolve().parents[2]
HONCHO_LINE = re.compile(r"^\d\d:\d\d:\d\d (\S+)\s+\| ?(.*)$")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def database_url() -> Iterator[str]:
    with throwaway_database() as url:
        yield url


@pytest.fixture
def stack(tmp_path: Path, database_url: str) -> Iterator[dict[str, str]]:
    venv_bin = str(Path(sys.executable).parent)
    run_dir = tmp_path / "run"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PATH": f"{venv_bin}:{os.environ['PATH']}",
        "RUN_DIR": str(run_dir),
        "PROMETHEUS_MULTIPROC_DIR": str(run_dir / "prometheus"),
        "WEB_PORT": str(free_port()),
        "FLOWER_PORT": str(free_port()),
        "FLOWER_BASIC_AUTH": "operator:flower-test-password",
        "ORDERS_CONCURRENCY": "1",
        "STOPLOSS_CONCURRENCY": "1",
        "BEAT_HEARTBEAT_SECONDS": "2",
        "READY_HEARTBEAT_MAX_AGE_SECONDS": "20",
        "LOG_FORMAT": "json",  # production's format, whose every line must parse
    }
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True, timeout=180)
    log_path = tmp_path / "honcho.log"
    log = log_path.open("w+")
    honcho = subprocess.Popen(
        [f"{venv_bin}/honcho", "-e", str(empty_env_file), "start", *honcho_concurrency(env)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield {**env, "log": str(log_path)}
    finally:
        os.killpg(honcho.pid, signal.SIGTERM)
        try:
            honcho.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(honcho.pid, signal.SIGKILL)
        log.close()


def get(url: str, deadline: float) -> requests.Response:
    while True:
        try:
            return requests.get(url, timeout=5)
        except requests.ConnectionError:
            assert time.monotonic() < deadline, url
            time.sleep(0.3)


@pytest.mark.slow
def test_every_process_logs_json_and_the_stack_becomes_ready_with_metrics_from_every_process(stack):
    deadline = time.monotonic() + 150
    web = f"http://127.0.0.1:{stack['WEB_PORT']}"
    ready = get(f"{web}/readyz", deadline)
    while ready.status_code != 200 and time.monotonic() < deadline:
        time.sleep(1)
        ready = get(f"{web}/readyz", deadline)
    metrics = get(f"{web}/metrics", deadline).text
    while 'algotrader_events_total{code="B5"}' not in metrics and time.monotonic() < deadline:
        time.sleep(1)
        metrics = get(f"{web}/metrics", deadline).text
    log = Path(stack["log"]).read_text(errors="replace")

    assert ready.status_code == 200, (ready.json(), log[-5000:])
    assert {name for name, check in ready.json()["checks"].items() if check["ok"]} >= {
        "database",
        "redis",
        "beat",
        "queue:orders",
        "queue:stoploss",
        "queue:scheduler",
    }
    assert 'algotrader_events_total{code="B5"}' in metrics, metrics  # counted by the listener process
    assert 'algotrader_queue_depth{queue="orders"}' in metrics
    seen: set[str] = set()
    not_json = []
    for line in log.splitlines():
        match = HONCHO_LINE.match(line)
        if match is None or match.group(1) == "system" or not match.group(2).strip():
            continue
        process = match.group(1).split(".")[0]
        seen.add(process)
        try:
            json.loads(match.group(2))
        except ValueError:
            not_json.append(line)
    assert not_json == [], "\n".join(not_json[:40])
    assert seen >= {"web", "worker", "stoploss", "beat", "market", "ticks", "flower"}, seen
