"""Shared fixtures of the monitoring tests."""

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.log_capture import project_handler


@pytest.fixture
def json_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """What the project's stdout handler writes (its JSON formatter and its filters), into
    a buffer; returns a reader of the lines written so far, parsed."""
    buffer = io.StringIO()
    handler = project_handler(buffer)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(min(level, logging.INFO))
    try:
        yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
