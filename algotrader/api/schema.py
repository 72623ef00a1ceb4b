"""The schema declares the one error shape every operation may answer with, so that a client
generated from it handles a 400 or a 429 instead of failing on it."""

from typing import Any

ERROR_COMPONENT = "Error"
_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "fields"],
            "properties": {
                "code": {"type": "string", "description": "A machine name: invalid, not_found, throttled..."},
                "message": {"type": "string"},
                "fields": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                    "description": "Per-field messages (dotted names for nested fields).",
                },
            },
        }
    },
}
_ERRORS = {
    400: ("The request is invalid: see the per-field messages.", "invalid", {"quantity": ["Must be at least 1."]}),
    401: ("No valid access token (or, to log in, no valid credentials).", "not_authenticated", {}),
    403: ("Not allowed: a postback that fails its checksum.", "checksum_invalid", {}),
    404: ("Not found (or not yours).", "not_found", {}),
    409: ("The request conflicts with the object's state.", "conflict", {}),
    429: ("Too many requests: retry after the Retry-After header's seconds.", "throttled", {}),
    502: ("The broker could not complete the request.", "broker_error", {}),
    503: (
        "A service it needs (the database, the broker) is busy or did not answer: retry later.",
        "broker_unavailable",
        {},
    ),
    504: ("The broker did not answer: what was sent may or may not have taken effect.", "broker_outcome_unknown", {}),
}
# The errors an operation answers beyond those its shape implies (400 with a body or a query,
# 401 with a token, 404 with an id, 503 everywhere): by operationId, checked against the schema
# by tests/algotrader/test_errors_and_schema.py, and by the fuzz against what is answered.
DECLARED_ERRORS: dict[str, frozenset[int]] = {
    "auth_register": frozenset({429}),
    "auth_login": frozenset({401, 429}),
    "auth_refresh": frozenset({401, 429}),
    "auth_logout": frozenset({401, 429}),
    "auth_password_change": frozenset({429}),
    "auth_password_reset": frozenset({429}),
    "auth_password_reset_confirm": frozenset({429}),
    "auth_account_delete": frozenset({409, 429}),
    "broker_accounts_submit": frozenset({502}),
    "broker_accounts_delete": frozenset({409}),
    "broker_accounts_login_url": frozenset({400, 409}),  # 400: a paper account has no login
    "broker_accounts_kite_login": frozenset({400, 409}),
    "broker_accounts_session": frozenset({409, 502}),
    "brokers_kite_postback": frozenset({403}),
    "strategies_create": frozenset({409}),
    "strategies_update": frozenset({409}),
    "strategies_delete": frozenset({409}),
    "strategies_start": frozenset({400, 409}),  # 400: the plan no longer holds (its time passed)
    "strategies_stop": frozenset({409}),
}


def operation_errors(operation: dict[str, Any]) -> list[int]:
    """The error statuses ``operation`` may answer: what its shape implies and what it declares."""
    parameters = operation.get("parameters") or []
    statuses = {503, *DECLARED_ERRORS.get(operation.get("operationId", ""), frozenset())}
    if operation.get("requestBody") or any(p.get("in") == "query" for p in parameters):
        statuses.add(400)
    if any(p.get("in") == "path" for p in parameters):
        statuses.add(404)
    if any(requirement for requirement in operation.get("security") or []):
        statuses.add(401)
    return sorted(statuses)


def error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the Error component, and on every operation the
    error statuses it may answer (``operation_errors``) that it does not describe itself."""
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_COMPONENT] = _ERROR_SCHEMA
    for path in result.get("paths", {}).values():
        for operation in path.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for status in operation_errors(operation):
                description, code, fields = _ERRORS[status]
                operation["responses"].setdefault(
                    str(status),
                    {
                        "description": description,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"},
                                "example": {"error": {"code": code, "message": description, "fields": fields}},
                            }
                        },
                    },
                )
    return result


def anonymous_operations(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: an operation open to anyone (register, login) takes
    no credentials at all, said as OpenAPI says it (``security: []``); drf-spectacular's
    ``[{}]`` reads as "credentials, optionally" and a generated client would ask for a token."""
    for path in result.get("paths", {}).values():
        for operation in path.values():
            if isinstance(operation, dict) and operation.get("security") == [{}]:
                operation["security"] = []
    return result
