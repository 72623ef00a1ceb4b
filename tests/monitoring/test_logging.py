"""Every line is one JSON object on stdout with the ids of what it concerns (the HTTP
request's id, the strategy and order of the work in progress), and secrets are redacted
from every record whatever handler writes it; harmless names like ``token_expires_at``
stay readable."""

import io
import logging
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.test import AsyncClient, Client

from execution import services as execution_services
from execution.tasks import execute_buy_task
from monitoring.logging import MASK, log_context, redact_text
from tests.monitoring.log_secrets import leaks

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_every_line_of_a_request_carries_its_request_id(json_lines):
    request_id = uuid.uuid4().hex

    response = Client().get("/no-such-page", HTTP_X_REQUEST_ID=request_id)

    assert response["X-Request-ID"] == request_id
    lines = [line for line in json_lines() if line.get("logger") == "django.request"]
    assert lines and all(line["request_id"] == request_id for line in lines)


@pytest.mark.django_db(transaction=True)
def test_an_asgi_request_with_a_forged_id_gets_a_fresh_one(json_lines):
    response = async_to_sync(AsyncClient().get)("/no-such-page", headers={"X-Request-ID": "not-a-uuid\nforged"})

    issued = response["X-Request-ID"]
    assert issued != "not-a-uuid\nforged" and uuid.UUID(issued)
    assert [line["request_id"] for line in json_lines() if line.get("logger") == "django.request"] == [issued]


def test_lines_inside_a_log_context_carry_its_ids(json_lines):
    with log_context(strategy_id=5), log_context(order_id=9):
        logging.getLogger("execution.services.orders").warning("broker slow")
    logging.getLogger("execution.services.orders").warning("outside")

    inside, outside = [line for line in json_lines() if line["message"] in ("broker slow", "outside")]
    assert (inside["strategy_id"], inside["order_id"]) == (5, 9)
    assert "strategy_id" not in outside and "order_id" not in outside


@pytest.mark.django_db
def test_an_order_task_logs_with_its_strategy_id(json_lines, monkeypatch):
    def execute(*, strategy_id: int) -> None:
        logging.getLogger("execution.services.positions").info("executing")

    monkeypatch.setattr(execution_services, "strategy_buy_execute", execute)

    execute_buy_task.apply(args=(41,))

    [line] = [line for line in json_lines() if line["message"] == "executing"]
    assert line["strategy_id"] == 41


def test_a_handler_without_the_filter_still_gets_redacted_text():
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)  # like pytest's log file: no project filter
    logger = logging.getLogger("brokers.adapters.kite")
    logger.addHandler(handler)
    try:
        logger.warning("POST /session/token api_secret=%s", "s3cr3tValue123")
        logger.warning("Authorization: token key:acc3ssTok3nValue")
    finally:
        logger.removeHandler(handler)

    assert "s3cr3tValue123" not in buffer.getvalue() and "acc3ssTok3nValue" not in buffer.getvalue()
    assert buffer.getvalue().count(MASK) >= 2


def test_expiry_times_and_types_are_not_taken_for_secrets():
    sql = (
        'UPDATE "brokers_brokeraccount" SET "token_expires_at" = \'2026-11-25 00:30:00+00:00\', '
        "\"access_token\" = 'gAAAAx'"
    )

    redacted = redact_text(sql)

    assert "\"token_expires_at\" = '2026-11-25 00:30:00+00:00'" in redacted
    assert "gAAAAx" not in redacted
    assert redact_text("token_type=bearer") == "token_type=bearer"


def test_extra_fields_named_like_expiries_stay_readable(json_lines):
    logging.getLogger("brokers.services").warning(
        "session", extra={"token_expires_at": "2026-11-25T00:30:00+00:00", "access_token": "acc3ssTok3nValue"}
    )

    [line] = [line for line in json_lines() if line["message"] == "session"]
    assert line["token_expires_at"] == "2026-11-25T00:30:00+00:00" and line["access_token"] == MASK


def test_the_log_scan_finds_known_secrets_and_any_jwt():
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoiMSJ9.c2lnbmF0dXJlLXZhbHVlLXNpZ25lZA"
    text = "ok line\nkey=kiteapisecret000001xyz here\nBearer " + jwt + "\nBearer [redacted]\n"

    assert leaks(text, {"kiteapisecret000001xyz"}) == ["key=kiteapisecret000001xyz here", "Bearer " + jwt]


def run_leaking_pytest(tmp_path: Path, test: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A separate pytest run of ``test`` with the log-scan plugin, logging to tmp_path/run.log."""
    path = tmp_path / "test_leak.py"
    path.write_text(test)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.monitoring.log_secrets",
            "-p",
            "no:cacheprovider",
            "-q",
            "-o",
            f"log_file={tmp_path / 'run.log'}",
            "--rootdir",
            str(ROOT),
            "-c",
            str(ROOT / "pyproject.toml"),
            *args,
            str(path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_a_run_that_logs_a_secret_fails_at_its_log_scan(tmp_path):
    # A separate pytest run whose only test writes a secret past redaction (raw to the log
    # file's handler): the run must fail at the end, naming the log scan.
    run = run_leaking_pytest(
        tmp_path,
        "import logging\n"
        "from django.conf import settings\n\n"
        "def test_leak():\n"
        "    for handler in logging.getLogger().handlers:\n"
        "        if isinstance(handler, logging.FileHandler):\n"
        "            handler.stream.write('leaked ' + settings.SECRET_KEY + '\\n')\n",
        "-n",
        "0",
    )

    assert run.returncode == 1, run.stdout + run.stderr
    assert "log scan: 1 line(s)" in run.stdout and settings.SECRET_KEY not in run.stdout


@pytest.mark.slow
def test_a_secret_only_a_worker_knew_found_in_its_own_log_fails_the_parallel_run(tmp_path):
    # Under pytest-xdist the worker writes its own log file and only it collected the
    # secret: the controller must still get both, scan, and fail the whole run.
    secret = f"worker-only-secret-{uuid.uuid4().hex}"
    run = run_leaking_pytest(
        tmp_path,
        "import logging\n"
        "from tests.monitoring.log_secrets import remember\n\n"
        "def test_leak():\n"
        f"    remember([{secret!r}])\n"
        "    for handler in logging.getLogger().handlers:\n"
        "        if isinstance(handler, logging.FileHandler):\n"
        f"            handler.stream.write('leaked {secret}\\n')\n",
        "-n",
        "1",
    )

    assert run.returncode == 1, run.stdout + run.stderr
    assert "log scan: 1 line(s) of" in run.stdout and "with its 1 worker logs" in run.stdout, run.stdout
    assert "run-gw0.log: leaked <SECRET>" in run.stdout and secret not in run.stdout
    assert (tmp_path / "run-gw0.log").read_text().count(secret) == 1
