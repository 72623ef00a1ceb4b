"""Logging for every process: one redaction of secrets on every record whatever handler writes
it, the ids of what a line concerns (request, task, strategy, order) added from context, and
the two formats (``LOG_FORMAT``): JSON for production, one readable line for a terminal."""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from celery import current_task
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

MASK = "[redacted]"

# Names that say "secret" but hold none: an expiry time, a type, a count (SQL columns
# like ``token_expires_at`` are logged at DEBUG and must stay readable).
_HARMLESS_SUFFIX = r"(?<!_at)(?<!_expiry)(?<!_expires)(?<!_type)(?<!_count)"
SECRET_KEYS = re.compile(
    r"^(?!.*_(?:at|expiry|expires|type|count)$).*"
    r"(pass(word)?|secret|token|authori[sz]ation|api[_-]?key|checksum|cookie|session|refresh|access|enctoken)",
    re.IGNORECASE,
)
_PATTERNS = [
    # "Bearer <jwt>" and Kite's "token api_key:access_token" header values
    (re.compile(r"(?i)\b(bearer|token)\s+[A-Za-z0-9._~+/=:-]{8,}"), r"\1 " + MASK),
    # any JWT
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), MASK),
    # key=value and "key": "value" pairs whose key names a secret
    (
        re.compile(
            r"(?i)([\"']?[\w-]*(?:secret|token|password|passwd|api_key|apikey|checksum|authorization)[\w-]*"
            + _HARMLESS_SUFFIX
            + r"[\"']?\s*[=:]\s*[\"']?)([^\"'&\s,}]+)"
        ),
        r"\1" + MASK,
    ),
]

# LogRecord attributes that are not user-supplied ``extra``.
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "_text_redacted",
}


# A word every pattern above needs (``eyJ`` in any case), searched first because most lines
# hold none and the patterns' leading ``[\w-]*`` rescans every word.
_ANY_PATTERN_WORD = re.compile(r"(?i)bearer|token|eyj|secret|password|passwd|api_key|apikey|checksum|authorization")


def redact_text(text: str) -> str:
    if not _ANY_PATTERN_WORD.search(text):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact(value: Any, key: str = "") -> Any:
    if key and SECRET_KEYS.search(key) and value not in (None, "", [], {}):
        return MASK
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(item) for item in value)
    if isinstance(value, str):
        return redact_text(value)
    return value


def _redact_text_of(record: logging.LogRecord) -> None:
    """The message (its ``%`` arguments merged in), the traceback and the stack."""
    if getattr(record, "_text_redacted", False):
        return
    if record.args:
        record.msg = record.getMessage()
        record.args = None
    if isinstance(record.msg, str):
        record.msg = redact_text(record.msg)
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact_text(record.exc_text)
    if record.stack_info:
        record.stack_info = redact_text(record.stack_info)
    record._text_redacted = True


class RedactSecretsFilter(logging.Filter):
    """The one redaction of secrets. On the stdout handler it covers the whole record,
    ``extra`` included; ``install_record_redaction`` applies its text part to every record
    as it is made, so whatever handler writes a line (pytest's log file, a library's own)
    never sees a secret in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_text_of(record)
        for name, value in list(vars(record).items()):
            if name not in _RESERVED:
                setattr(record, name, redact(value, name))
        return True


def install_record_redaction() -> None:
    """Redact each record's text when it is made: after the level check, so a DEBUG line
    that is not logged costs nothing. (``extra`` is set on the record after the factory
    returns; only the JSON handler writes it, and its filter redacts it.) Idempotent."""
    current = logging.getLogRecordFactory()
    if getattr(current, "redacts", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        _redact_text_of(record)
        return record

    factory.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


# --- ids on every line ---------------------------------------------------------------

_CONTEXT: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("log_context", default=None)


@contextmanager
def log_context(**ids: Any) -> Iterator[None]:
    """Every line logged inside carries these ids (``strategy_id``, ``order_id``), in
    this thread or task and what it awaits; nested contexts add to the outer one."""
    token = _CONTEXT.set({**(_CONTEXT.get() or {}), **ids})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class LogContextFilter(logging.Filter):
    """Adds the context's ids, the request id (django-guid's, which its Celery integration
    carries into the tasks a request enqueues) and the id of the Celery task being run,
    unless the line sets its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in (_CONTEXT.get() or {}).items():
            if value is not None and not hasattr(record, name):
                setattr(record, name, value)
        request_id = _request_id()
        if request_id is not None and not hasattr(record, "request_id"):
            record.request_id = request_id
        if current_task and not hasattr(record, "task_id"):
            task_id = current_task.request.id
            if task_id is not None:
                record.task_id = task_id
        return True


def _request_id() -> str | None:
    from django_guid import get_guid

    return get_guid()


# --- routine lines below INFO ---------------------------------------------------------


class DemoteToDebug(logging.Filter):
    """Lowers one routine INFO line of a library's logger to DEBUG (on that logger, as a
    logger filter): beat's "Scheduler: Sending due task", several lines every few seconds,
    would drown its start-up and shutdown lines, which keep their level. Shown again with
    ``LOG_LEVEL=DEBUG``."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not str(record.msg).startswith(self.prefix):
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


# --- formats ----------------------------------------------------------------------------


class JsonFormatter(_JsonFormatter):
    """One JSON object a line: level, logger, message, UTC ISO time and every ``extra``."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
            reserved_attrs=[*RESERVED_ATTRS, "_text_redacted"],
        )

    def formatException(self, ei: Any) -> str:
        """Redacted, as the record's own copy (``exc_text``) is: this formatter formats the
        traceback afresh, so a secret in an exception's message reached the JSON line."""
        return redact_text(str(super().formatException(ei)))


# The ids first, in this order; the other scalar ``extra`` fields follow as logged.
_TEXT_IDS = ("event", "request_id", "task_id", "strategy_id", "order_id", "user_id")
# Carried by the JSON line, noise on a terminal: uvicorn's coloured copy of the message,
# and an event's name, category and row id next to its code.
_TEXT_SKIPPED = frozenset({"color_message", "event_name", "category", "event_id"})
_CELERY_COMMANDS = ("worker", "beat", "flower")


def process_name(argv: list[str] | None = None) -> str:
    """The Procfile name honcho gives the process (``worker.2``), else the program's
    (``beat`` for ``celery beat``, ``migrate`` for ``manage.py migrate``)."""
    name = os.environ.get("HONCHO_PROCESS_NAME")
    if name:
        return name
    argv = sys.argv if argv is None else argv
    program = Path(argv[0]).stem if argv and argv[0] else "python"
    if program == "__main__":  # python -m package
        program = Path(argv[0]).parent.name
    if program == "celery":
        return next((arg for arg in argv[1:] if arg in _CELERY_COMMANDS), program)
    if program == "manage" and len(argv) > 1:
        return argv[1]
    return program


def _text_value(value: object) -> str:
    text = str(value)
    return json.dumps(text) if not text or any(c.isspace() or c in '"=' for c in text) else text


class TextFormatter(logging.Formatter):
    """``HH:MM:SS.mmm process LEVEL message key=value...`` (UTC, as the JSON lines): the
    ids a JSON line carries (event code, request, task, strategy, order, user) and its
    other plain fields; dicts and lists stay in the JSON lines. The traceback follows on
    lines of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.process = process_name()

    def formatException(self, ei: Any) -> str:
        """Redacted here too, for a record whose traceback was not formatted when it was made."""
        return redact_text(super().formatException(ei))

    def format(self, record: logging.LogRecord) -> str:
        fields = vars(record)
        extra = [name for name in _TEXT_IDS if name in fields]
        extra += [name for name in fields if name not in _RESERVED and name not in _TEXT_SKIPPED and name not in extra]
        pairs = " ".join(
            f"{name}={_text_value(fields[name])}"
            for name in extra
            if isinstance(fields[name], (str, int, float)) and fields[name] != ""
        )
        stamp = time.strftime("%H:%M:%S", time.gmtime(record.created))
        line = f"{stamp}.{int(record.msecs):03d} {self.process:<11} {record.levelname:<5} {record.getMessage()}"
        if pairs:
            line = f"{line}  {pairs}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line = f"{line}\n{record.exc_text}"
        if record.stack_info:
            line = f"{line}\n{self.formatStack(record.stack_info)}"
        return line
