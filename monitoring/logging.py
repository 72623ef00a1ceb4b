"""Logging for every process: one redaction of secrets applied to every record whatever
handler writes it (values under secret-looking keys in ``extra`` and ``%`` arguments are
masked, and credential shapes (bearer tokens, JWTs, Kite ``token key:secret`` headers,
``secret=...`` pairs) inside messages), and the ids of what a line concerns (the HTTP
request, the strategy, the order) added from context to each line."""

from __future__ import annotations

import contextvars
import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

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


# A word every pattern above needs (a superset: ``eyJ`` is matched whatever its case).
# Most lines hold none, and one search for them costs a fraction of the three patterns,
# whose leading ``[\w-]*`` rescans every word: the redaction was most of the CPU of a
# worker's per-task log lines.
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
    """Adds the context's ids and the request id (django-guid's, which its Celery
    integration carries into the tasks a request enqueues) unless the line sets its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in (_CONTEXT.get() or {}).items():
            if value is not None and not hasattr(record, name):
                setattr(record, name, value)
        request_id = _request_id()
        if request_id is not None and not hasattr(record, "request_id"):
            record.request_id = request_id
        return True


def _request_id() -> str | None:
    from django_guid import get_guid

    return get_guid()
