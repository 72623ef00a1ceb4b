"""The API's JSON parser, bounded before it parses: a body nested deeper than any request of
ours needs is a 400, never a RecursionError (a 500). Size is Django's: DRF reads the body
through ``request.body``, which refuses one over DATA_UPLOAD_MAX_MEMORY_SIZE (a JSON 400)."""

import io
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

_OPEN, _CLOSE, _QUOTE, _BACKSLASH = frozenset(b"[{"), frozenset(b"]}"), ord('"'), ord("\\")


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether arrays and objects in ``body`` nest deeper than ``limit`` (strings skipped)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # too few brackets to nest that deep: the common case, without a scan
    depth, in_string, escaped = 0, False, False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == _BACKSLASH:
                escaped = True
            elif byte == _QUOTE:
                in_string = False
        elif byte == _QUOTE:
            in_string = True
        elif byte in _OPEN:
            depth += 1
            if depth > limit:
                return True
        elif byte in _CLOSE:
            depth -= 1
    return False


class BoundedJSONParser(JSONParser):
    def parse(
        self, stream: IO[bytes], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        body = stream.read() if stream is not None else b""
        if json_depth_exceeds(body, settings.API_JSON_MAX_DEPTH):
            raise ParseError(f"The JSON is nested deeper than {settings.API_JSON_MAX_DEPTH} levels.")
        return super().parse(io.BytesIO(body), media_type, parser_context)
