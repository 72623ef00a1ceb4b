"""The project's own stdout log handler (its JSON formatter and its redaction filters),
copied onto a buffer, for tests that check what a log line really looks like."""

import io
import logging

from monitoring.logging import RedactSecretsFilter


def project_handler(buffer: io.StringIO) -> logging.Handler:
    configured = next(
        handler
        for handler in logging.getLogger().handlers
        if any(isinstance(f, RedactSecretsFilter) for f in handler.filters)
    )
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(configured.formatter)
    for log_filter in configured.filters:
        handler.addFilter(log_filter)
    return handler
