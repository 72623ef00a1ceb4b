"""The browser tests: Debian's Chromium, headless, driven by Playwright, against
pytest-django's live server on the test database, with a real Celery worker for the
orders the admin actions cause. No browser is downloaded: ``make test`` installs
Debian's ``chromium`` when it is missing (CHROMIUM_PATH points elsewhere if need be)."""

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.db import connection
from playwright.sync_api import Browser, Page, expect, sync_playwright

from algotrader.celery import app
from algotrader.users.models import User
from tests.execution.workers import Worker
from tests.strategies.scheduling_helpers import declare_queues
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
OPERATOR_EMAIL = "operator@example.com"
OPERATOR_PASSWORD = "a long operator passphrase"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Module-scoped, and stopped before other modules run: while Playwright's sync API is
    started, an event loop runs on this thread and async_to_sync (Channels) refuses to."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium (as root), or set CHROMIUM_PATH"
        )
    # Playwright's sync API keeps an event loop on this thread; the ORM calls the tests make
    # between browser steps are still plain synchronous code.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
    expect.set_options(timeout=20_000)
    try:
        yield launched
    finally:
        launched.close()
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def operator(browser: Browser, live_server) -> Iterator[Page]:
    """A superuser logged in through the admin's login form, as a person would."""
    User.objects.create_superuser(OPERATOR_EMAIL, OPERATOR_PASSWORD)
    context = browser.new_context(base_url=live_server.url)
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", OPERATOR_EMAIL)
    page.fill("#id_password", OPERATOR_PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_be_visible()
    expect(page.locator("body")).to_contain_text("Site administration")
    try:
        yield page
    finally:
        context.close()


@pytest.fixture(scope="module")
def worker(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Worker]:
    """A Celery worker on both order queues, on the test database (the one the live server uses)."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    database_url = urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1", "PAPER_LATENCY_MS": "100"}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    name = f"admintest-{uuid.uuid4().hex[:8]}@%h"
    log = tmp_path_factory.mktemp("celery") / "worker.log"
    command = ["worker", "-Q", "orders,stoploss,scheduler", "-n", name, "--concurrency", "2", "--without-mingle"]
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "algotrader", *command, "--loglevel", "INFO"],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    worker = Worker(name.replace("%h", os.uname().nodename), process, log)
    try:
        declare_queues()

        def answering() -> bool:
            assert process.poll() is None, worker.text()
            return bool(app.control.ping(destination=[worker.name], timeout=0.5))

        wait_until(answering, timeout=60, interval=0, message=worker.text)
        yield worker
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
