"""BUY then SELL (and BUY then stop-loss) end to end through a real celery worker
subprocess consuming both order queues, on the test database and the paper broker."""

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.db import connection

from algotrader.celery import app
from execution.tasks import execute_buy_task, execute_sell_task, execute_stoploss_task
from strategies.models import Strategy
from tests.execution.helpers import codes, orders, paper_book
from tests.strategies.scheduling_helpers import declare_queues

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def worker(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Path]:
    parts = urlsplit(os.environ["DATABASE_URL"])
    database_url = urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1", "PAPER_LATENCY_MS": "100"}
    name = f"exectest-{uuid.uuid4().hex[:8]}@%h"
    log = tmp_path_factory.mktemp("celery") / "worker.log"
    command = ["worker", "-Q", "orders,stoploss", "-n", name, "--concurrency", "2", "--without-mingle"]
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "algotrader", *command, "--loglevel", "INFO"],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        declare_queues()
        while not app.control.ping(destination=[name.replace("%h", os.uname().nodename)], timeout=0.5):
            assert time.monotonic() < deadline, log.read_text(errors="replace")
        yield log
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(autouse=True)
def queues_declared(worker: Path) -> None:
    declare_queues()  # the tests flush Redis, the queues' bindings included


def wait_for(condition: Callable[[], bool], log: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, log.read_text(errors="replace")[-6000:]
        time.sleep(0.05)


def position(strategy: Strategy) -> tuple[str, str]:
    strategy.refresh_from_db()
    return strategy.status, strategy.position


def test_buy_then_sell_through_a_worker(make_strategy, worker):
    strategy = make_strategy()

    execute_buy_task.delay(strategy.pk)
    execute_buy_task.delay(strategy.pk)  # a redelivery: one effect
    wait_for(lambda: position(strategy) == ("RUNNING", "BOUGHT"), worker)
    execute_sell_task.delay(strategy.pk, reason="SELL")
    wait_for(lambda: position(strategy) == ("EXITED", "SOLD"), worker)

    assert [(o.side, o.status) for o in paper_book(strategy)] == [("BUY", "COMPLETE"), ("SELL", "COMPLETE")]
    assert [(o.reason, o.status) for o in orders(strategy)] == [("BUY", "COMPLETE"), ("SELL", "COMPLETE")]
    assert codes(strategy).count("S5") == 1


def test_buy_then_stoploss_on_its_own_queue_through_a_worker(make_strategy, worker):
    strategy = make_strategy()

    execute_buy_task.delay(strategy.pk)
    wait_for(lambda: position(strategy) == ("RUNNING", "BOUGHT"), worker)
    execute_stoploss_task.delay(strategy.pk)
    wait_for(lambda: position(strategy) == ("EXITED", "EXITED_BY_SL"), worker)

    assert [(o.reason, o.status) for o in orders(strategy)] == [("BUY", "COMPLETE"), ("STOPLOSS", "COMPLETE")]
    assert "execution.tasks.execute_stoploss_task" in worker.read_text(errors="replace")
