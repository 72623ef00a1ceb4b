"""The project's own stdout log handler (its JSON formatter and its redaction filters),
copied onto a buffer, for tests that check what a log line really looks like."""

import io
import logging

from monitoring.logging import JsonFormatter, RedactSecretsFilter


def project_handler(buffer: io.StringIO, formatter: logging.Formatter | None = None) -> logging.Handler:
    """JSON lines (production's format, whatever LOG_FORMAT this run has) unless told."""
    configured = next(
        handler
        for handler in logging.getLogger().handlers
        if any(isinstance(f, RedactSecretsFilter) for f in handler.filters)
    )
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(formatter or JsonFormatter())
    for log_filter in configured.filters:
        handler.addFilter(log_filter)
    return handler
