"""Every line carries the ids of what it concerns (the HTTP request's id, the Celery task,
the strategy and order of the work in progress), as one JSON object (production) or one
readable text line (development), and secrets are redacted from every record whatever
handler writes it; harmless names like ``token_expires_at`` stay readable. Celery's own
log set-up keeps ours, and beat's line for every task it sends is below INFO."""

import io
import json
import logging
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.test import AsyncClient, Client

from algotrader.processes import log_format
from execution import services as execution_services
from execution.tasks import execute_buy_task
from monitoring.events import Event
from monitoring.logging import MASK, TextFormatter, log_context, process_name, redact_text
from monitoring.services import emit
from tests.log_capture import project_handler
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
    def execute(*, strategy_id: int, hand_off: bool = False) -> None:
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


# --- the text format -------------------------------------------------------------------

TEXT_LINE = re.compile(r"^(\d\d:\d\d:\d\d\.\d{3}) (\S+) +(DEBUG|INFO|WARNING|ERROR|CRITICAL) +(.*)$")


@pytest.fixture
def text_lines() -> Iterator[Callable[[], list[str]]]:
    """What the project's stdout handler writes with LOG_FORMAT=text (its filters, the
    text formatter), into a buffer; returns a reader of the lines written so far."""
    buffer = io.StringIO()
    handler = project_handler(buffer, TextFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(min(level, logging.INFO))
    try:
        yield lambda: buffer.getvalue().splitlines()
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_a_text_line_is_time_process_level_message_then_its_ids(text_lines):
    with log_context(strategy_id=5, order_id=9):
        logging.getLogger("execution.services.orders").warning(
            "order poll failed", extra={"error": "read timed out", "payload": {"status": "OPEN"}}
        )

    [line] = [line for line in text_lines() if "order poll failed" in line]
    match = TEXT_LINE.match(line)
    assert match is not None, line
    assert match.group(2) == process_name() and match.group(3) == "WARNING"
    assert match.group(4) == 'order poll failed  strategy_id=5 order_id=9 error="read timed out"'


def test_the_process_is_honchos_name_else_the_programs(monkeypatch):
    monkeypatch.delenv("HONCHO_PROCESS_NAME", raising=False)
    assert process_name(["/venv/bin/celery", "-A", "algotrader", "--quiet", "beat", "--loglevel", "INFO"]) == "beat"
    assert process_name(["manage.py", "run_market_listener"]) == "run_market_listener"

    monkeypatch.setenv("HONCHO_PROCESS_NAME", "worker.2")
    assert process_name(["/venv/bin/celery", "-A", "algotrader", "worker"]) == "worker.2"


@pytest.mark.django_db
def test_an_event_line_shows_its_code_and_ids(user, text_lines):
    emit(Event.U2_USER_LOGGED_IN, user=user)

    [line] = [line for line in text_lines() if "event=U2" in line]
    assert line.endswith(f"  event=U2 user_id={user.pk}"), line
    assert "event_id" not in line and "category" not in line


@pytest.mark.django_db
def test_a_task_line_carries_the_task_id_in_both_formats(text_lines, json_lines, monkeypatch):
    def execute(*, strategy_id: int, hand_off: bool = False) -> None:
        logging.getLogger("execution.services.positions").info("executing")

    monkeypatch.setattr(execution_services, "strategy_buy_execute", execute)

    result = execute_buy_task.apply(args=(41,))

    [text] = [line for line in text_lines() if "executing" in line]
    [line] = [line for line in json_lines() if line["message"] == "executing"]
    assert line["task_id"] == result.id
    assert text.endswith(f"executing  request_id={line['request_id']} task_id={result.id} strategy_id=41"), text


@pytest.mark.django_db
def test_a_text_line_of_a_request_carries_its_request_id(text_lines):
    request_id = uuid.uuid4().hex

    Client().get("/no-such-page", HTTP_X_REQUEST_ID=request_id)

    lines = [line for line in text_lines() if "Not Found: /no-such-page" in line]
    assert lines and all(f"request_id={request_id}" in line for line in lines), lines


def test_a_traceback_follows_its_text_line(text_lines):
    try:
        raise ValueError("bad tick")
    except ValueError:
        logging.getLogger("market.consumers").exception("frame dropped")

    text = "\n".join(text_lines())
    assert re.search(r"ERROR +frame dropped\nTraceback \(most recent call last\):\n", text), text
    assert "ValueError: bad tick" in text


# --- the format by environment, and Celery's log set-up ----------------------------------

PRODUCTION = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": "production-secret-key-for-the-logging-test-0123456789",
    "JWT_SIGNING_KEY": "production-jwt-key-for-the-logging-test-0123456789",
    "FIELD_ENCRYPTION_KEYS": "ZGV2ZWxvcG1lbnQtb25seS1pbnNlY3VyZS1rZXkhISE=",
}

# What `celery beat` and `celery worker` do to logging before they run (Beat.setup_logging,
# WorkController's app.log.setup), then a line of each kind beat logs.
CELERY_PROCESS = """
import logging
import django

django.setup()
from celery.apps.beat import Beat
from algotrader.celery import app

Beat(app=app, loglevel="INFO", quiet=True, redirect_stdouts=False).setup_logging()
app.log.already_setup = False
app.log.setup(loglevel="INFO", redirect_stdouts=False)
beat = logging.getLogger("celery.beat")
beat.info("beat: Starting...")
beat.info("Scheduler: Sending due task %s (%s)", "strategies: sweep due BUY/SELL", "strategies.tasks.sweep_due_task")
logging.getLogger("celery.apps.worker").info("orders-worker.1@host ready.")
"""


def run_celery_process(**env: str) -> list[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("LOG_FORMAT", "LOG_LEVEL", "HONCHO_PROCESS_NAME")}
    run = subprocess.run(
        [sys.executable, "-c", CELERY_PROCESS],
        cwd=ROOT,
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.splitlines()


def test_the_format_is_json_in_production_and_text_elsewhere_unless_log_format_says():
    assert log_format({"DJANGO_ENV": "production"}) == "json"
    assert log_format({"DJANGO_ENV": "development", "LOG_FORMAT": ""}) == "text"
    assert log_format({"DJANGO_ENV": "production", "LOG_FORMAT": "text"}) == "text"
    with pytest.raises(ValueError, match="LOG_FORMAT must be one of text, json"):
        log_format({"LOG_FORMAT": "xml"})


@pytest.mark.slow
def test_celery_processes_write_text_lines_in_development_and_beats_sends_are_below_info():
    lines = run_celery_process(DJANGO_ENV="development", HONCHO_PROCESS_NAME="beat.1")

    matches = [TEXT_LINE.match(line) for line in lines]
    assert all(matches), lines
    assert [(m.group(2), m.group(3), m.group(4)) for m in matches if m] == [
        ("beat.1", "INFO", "beat: Starting..."),
        ("beat.1", "INFO", "orders-worker.1@host ready."),
    ]


@pytest.mark.slow
def test_beats_sends_are_logged_at_debug_when_debug_is_asked_for():
    lines = run_celery_process(DJANGO_ENV="development", LOG_LEVEL="DEBUG", HONCHO_PROCESS_NAME="beat.1")

    sends = [line for line in lines if "Sending due task" in line]
    assert len(sends) == 1 and TEXT_LINE.match(sends[0]).group(3) == "DEBUG", lines  # type: ignore[union-attr]


@pytest.mark.slow
def test_production_writes_json_lines_from_celery_processes_too():
    lines = run_celery_process(**PRODUCTION)

    parsed = [json.loads(line) for line in lines]
    assert [(line["level"], line["logger"], line["message"]) for line in parsed] == [
        ("INFO", "celery.beat", "beat: Starting..."),
        ("INFO", "celery.apps.worker", "orders-worker.1@host ready."),
    ]


@pytest.mark.slow
def test_log_format_overrides_the_environments_default():
    lines = run_celery_process(**PRODUCTION, LOG_FORMAT="text", HONCHO_PROCESS_NAME="beat.1")

    assert lines and all(TEXT_LINE.match(line) for line in lines), lines
