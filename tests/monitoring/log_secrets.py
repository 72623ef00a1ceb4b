"""pytest plugin (registered in tests/conftest.py): the full DEBUG log of the run, which
pytest writes to ``log_file`` (var/test-run.log), must hold no secret the tests used.
Each test's secrets are collected after it (broker credentials from the database and
the Kite simulator, JWTs by their shape, the passwords the factories set, SECRET_KEY and
FIELD_ENCRYPTION_KEYS); at the end of the session the log is scanned and a find fails
the run, naming the line (with the secret itself masked)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

# Three base64url parts, the first a JSON header: the shape of every JWT simplejwt issues.
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")
# The passwords tests log in with (tests/conftest.py's ``password``, the UserFactory's).
PASSWORDS = ("correct horse battery staple",)
MIN_LENGTH = 8  # shorter values are too common to mean anything when found

_secrets: set[str] = set()


def pytest_configure(config: pytest.Config) -> None:
    # factory_boy echoes every declaration's value at DEBUG, the test users' passwords
    # included: test tooling, not the product, and it would be the only finding.
    logging.getLogger("factory").setLevel(logging.INFO)


def remember(values: Iterable[str | None]) -> None:
    _secrets.update(value for value in values if value and len(value) >= MIN_LENGTH)


def leaks(text: str, secrets: Iterable[str]) -> list[str]:
    """The lines of ``text`` holding one of ``secrets`` or a JWT."""
    ordered = sorted({s for s in secrets if s}, key=len, reverse=True)
    known = re.compile("|".join(re.escape(secret) for secret in ordered)) if ordered else None
    return [line for line in text.splitlines() if JWT.search(line) or (known is not None and known.search(line))]


def _uses_db(request: pytest.FixtureRequest) -> bool:
    marker = request.node.get_closest_marker("django_db")
    return marker is not None or bool({"db", "transactional_db", "live_server"} & set(request.fixturenames))


@pytest.fixture(autouse=True)
def collect_test_secrets(request: pytest.FixtureRequest) -> Iterator[None]:
    if _uses_db(request):
        # Set up after the database fixture, so torn down (and read) before its rollback.
        marker = request.node.get_closest_marker("django_db")
        transactional = (marker is not None and marker.kwargs.get("transaction")) or (
            "live_server" in request.fixturenames
        )
        request.getfixturevalue("transactional_db" if transactional else "db")
    yield
    if "kite_sim" in request.fixturenames:
        simulator = request.getfixturevalue("kite_sim")
        remember(value for state in simulator.accounts.all() for value in (state.api_secret, state.access_token))
    if _uses_db(request):
        from brokers.models import BrokerAccount

        try:
            remember(
                value for account in BrokerAccount.objects.all() for value in (account.api_secret, account.access_token)
            )
        except Exception:  # a test that broke its database connection: nothing to read
            logging.getLogger(__name__).warning("secrets of this test not collected", exc_info=True)


def _log_file(config: pytest.Config) -> Path | None:
    plugin = config.pluginmanager.get_plugin("logging-plugin")
    handler = getattr(plugin, "log_file_handler", None)
    if handler is None or not getattr(handler, "baseFilename", None):
        return None
    handler.flush()
    return Path(handler.baseFilename)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from django.conf import settings

    path = _log_file(session.config)
    if path is None or not path.exists():
        return
    remember([settings.SECRET_KEY, *settings.FIELD_ENCRYPTION_KEYS, *PASSWORDS])
    found = leaks(path.read_text(errors="replace"), _secrets)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
    if not found:
        if reporter is not None:
            reporter.write_line(f"log scan: {path} holds none of the {len(_secrets)} secrets the tests used")
        return
    if reporter is not None:
        reporter.write_line(f"log scan: {len(found)} line(s) of {path} hold a secret:", red=True)
        for line in found[:20]:
            masked = JWT.sub("<JWT>", line)
            for secret in _secrets:
                masked = masked.replace(secret, "<SECRET>")
            reporter.write_line(f"  {masked[:300]}", red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
