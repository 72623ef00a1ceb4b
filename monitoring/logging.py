"""The logging filter that keeps secrets out of every log line, whatever logged them:
values under secret-looking keys in ``extra`` and ``%`` arguments are masked, and
credential shapes (bearer tokens, JWTs, Kite ``token key:secret`` headers,
``secret=...`` pairs) are masked inside messages."""

import logging
import re
from collections.abc import Mapping
from typing import Any

MASK = "[redacted]"

SECRET_KEYS = re.compile(
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
            r"(?i)([\"']?[\w-]*(?:secret|token|password|passwd|api_key|apikey|checksum|authorization)[\w-]*[\"']?"
            r"\s*[=:]\s*[\"']?)([^\"'&\s,}]+)"
        ),
        r"\1" + MASK,
    ),
]

# LogRecord attributes that are not user-supplied ``extra``.
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def redact_text(text: str) -> str:
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


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        for name, value in list(vars(record).items()):
            if name not in _RESERVED:
                setattr(record, name, redact(value, name))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True
