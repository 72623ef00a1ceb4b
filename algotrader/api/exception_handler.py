"""Renders every API error, ours and DRF's, in one shape:
``{"error": {"code": str, "message": str, "fields": {field: [messages]}}}``."""

from typing import Any

from django.db import OperationalError
from django.http import Http404
from psycopg_pool import PoolTimeout
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import set_rollback

from algotrader.exceptions import ApplicationError

# DRF's own default codes are fine machine names except these few.
_DRF_CODES = {
    drf.ValidationError: "invalid",
    drf.ParseError: "malformed_request",
    drf.NotAuthenticated: "not_authenticated",
    drf.AuthenticationFailed: "authentication_failed",
    drf.Throttled: "throttled",
}


def flatten_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """Nested serializer errors become dotted field names with lists of messages."""
    if isinstance(detail, dict):
        fields: dict[str, list[str]] = {}
        for key, value in detail.items():
            fields.update(flatten_errors(value, f"{prefix}.{key}" if prefix else str(key)))
        return fields
    if isinstance(detail, list) and any(isinstance(item, (dict, list)) for item in detail):
        fields = {}
        for index, item in enumerate(detail):
            fields.update(flatten_errors(item, f"{prefix}.{index}" if prefix else str(index)))
        return fields
    messages = detail if isinstance(detail, list) else [detail]
    return {prefix or "non_field_errors": [str(message) for message in messages if message]}


def error_body(code: str, message: str, fields: dict[str, list[str]] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, OperationalError) and isinstance(exc.__cause__, PoolTimeout):
        # Every pooled connection busy for the pool's whole timeout: a crowd, not a bug.
        set_rollback()
        body = error_body("database_busy", "The service is busy: retry in a moment.")
        return Response(body, status=503, headers={"Retry-After": "1"})
    if isinstance(exc, ApplicationError):
        set_rollback()
        body = error_body(exc.code, exc.message, exc.fields)
        body["error"].update(exc.extra)
        return Response(body, status=exc.status)
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    if not isinstance(exc, drf.APIException):
        return None  # a real bug: let Django log it and answer with the JSON 500 view

    set_rollback()
    headers: dict[str, str] = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))  # type: ignore[attr-defined]

    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), None)
    if code is None:
        code = str(exc.default_code)
    if isinstance(exc, drf.ValidationError):
        fields = flatten_errors(exc.detail)
        first = next(iter(fields.values()), ["Invalid input."])
        message = first[0] if list(fields) == ["non_field_errors"] else "Some fields are invalid."
        return Response(error_body(code, message, fields), status=exc.status_code, headers=headers)
    detail = exc.detail
    if isinstance(detail, dict):
        message = str(detail.get("detail", exc.default_detail))
    elif isinstance(detail, list):
        message = " ".join(str(item) for item in detail)
    else:
        message = str(detail)
    return Response(error_body(code, message), status=exc.status_code, headers=headers)
