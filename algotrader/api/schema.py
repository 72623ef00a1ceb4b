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
    "400": ("The request is invalid: see the per-field messages.", "invalid", {"quantity": ["Must be at least 1."]}),
    "401": ("No valid access token.", "not_authenticated", {}),
    "403": ("Not allowed (a staff-only page, or a postback that fails its checksum).", "forbidden", {}),
    "404": ("Not found (or not yours).", "not_found", {}),
    "409": ("The request conflicts with the object's state.", "conflict", {}),
    "429": ("Too many requests: retry after the Retry-After header's seconds.", "throttled", {}),
    "503": ("A service it needs (the broker) did not answer: retry later.", "broker_unavailable", {}),
}


def error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the Error component, and each error status on
    every operation that does not declare it itself."""
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_COMPONENT] = _ERROR_SCHEMA
    for path in result.get("paths", {}).values():
        for operation in path.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for status, (description, code, fields) in _ERRORS.items():
                operation["responses"].setdefault(
                    status,
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
