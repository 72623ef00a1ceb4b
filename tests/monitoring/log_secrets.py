"""pytest plugin (registered in tests/conftest.py): the full DEBUG log of the run, which
pytest writes to ``log_file`` (var/test-run.log), must hold no secret the tests used.
Each test's secrets are collected after it (broker credentials from the database and
the Kite simulator, JWTs by their shape, the passwords the factories set, SECRET_KEY and
FIELD_ENCRYPTION_KEYS); at the end of the session the log is scanned and a find fails
the run, naming the line (with the secret itself masked). Under pytest-xdist each worker
logs to a file of its own (var/test-run-gw0.log...) and hands its file and secrets to the
controller, which scans every file for every worker's secrets: one worker's secret is
looked for in every log of the run."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Three base64url parts, the first a JSON header: the shape of every JWT simplejwt issues.
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")
# The passwords tests log in with (tests/conftest.py's ``password``, the UserFactory's).
PASSWORDS = ("correct horse battery staple",)
MIN_LENGTH = 8  # shorter values are too common to mean anything when found

_secrets: set[str] = set()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # factory_boy echoes every declaration's value at DEBUG, the test users' passwords
    # included: test tooling, not the product, and it would be the only finding.
    logging.getLogger("factory").setLevel(logging.INFO)
    workerinput = getattr(config, "workerinput", None)
    log_file = config.getoption("log_file") or config.getini("log_file")
    if workerinput is not None and log_file:
        # Before the logging plugin opens it (its pytest_configure is trylast): workers
        # writing one file in "w" mode would truncate and interleave each other's lines.
        config.option.log_file = str(worker_log_file(Path(log_file), workerinput["workerid"]))
    config.stash[_worker_reports] = {}


def worker_log_file(log_file: Path, worker: str) -> Path:
    return log_file.with_name(f"{log_file.stem}-{worker}{log_file.suffix}")


_worker_reports = pytest.StashKey[dict[str, dict[str, Any] | None]]()


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


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object | None) -> None:
    """On the controller: a worker's log file and secrets (none if it crashed)."""
    config: pytest.Config = node.config
    config.stash[_worker_reports][node.gateway.id] = getattr(node, "workeroutput", {}).get("log_scan")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from django.conf import settings

    config = session.config
    path = _log_file(config)
    remember([settings.SECRET_KEY, *settings.FIELD_ENCRYPTION_KEYS, *PASSWORDS])
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller scans
        workeroutput["log_scan"] = {"path": str(path) if path else None, "secrets": sorted(_secrets)}
        return
    if path is None or not path.exists():
        return
    paths, secrets, unreported = [path], set(_secrets), []
    for worker, report in sorted(config.stash[_worker_reports].items()):
        if report is None:  # crashed: its file is still scanned, with every other secret
            unreported.append(worker)
            paths.append(worker_log_file(path, worker))
        elif report["path"]:
            paths.append(Path(report["path"]))
            secrets.update(report["secrets"])
    found = [(log, line) for log in paths if log.exists() for line in leaks(log.read_text(errors="replace"), secrets)]
    scanned = str(path) if len(paths) == 1 else f"{path} with its {len(paths) - 1} worker logs"
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
    if unreported and reporter is not None:
        reporter.write_line(f"log scan: worker(s) {', '.join(unreported)} reported no secrets", red=True)
    if not found and not unreported:
        if reporter is not None:
            reporter.write_line(f"log scan: {scanned} holds none of the {len(secrets)} secrets the tests used")
        return
    if found and reporter is not None:
        reporter.write_line(f"log scan: {len(found)} line(s) of {scanned} hold a secret:", red=True)
        for log, line in found[:20]:
            masked = JWT.sub("<JWT>", line)
            for secret in secrets:
                masked = masked.replace(secret, "<SECRET>")
            reporter.write_line(f"  {log.name}: {masked[:300]}", red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
