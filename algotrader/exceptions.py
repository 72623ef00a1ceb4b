"""The one error contract: app code raises an ApplicationError (or a domain
subclass) and the API exception handler renders it as
``{"error": {"code", "message", "fields"}}`` with its HTTP status."""

from typing import Any


class ApplicationError(Exception):
    code: str = "error"
    status: int = 400
    message: str = "The request could not be completed."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        status: int | None = None,
        fields: dict[str, list[str]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.message = message or self.message
        self.code = code or self.code
        self.status = status or self.status
        self.fields = fields or {}
        self.extra = extra or {}
        super().__init__(self.message)


class NotFound(ApplicationError):
    code = "not_found"
    status = 404
    message = "Not found."


class Conflict(ApplicationError):
    code = "conflict"
    status = 409
    message = "The request conflicts with the current state."


class ValidationFailed(ApplicationError):
    """Input a serializer accepted but a domain rule refused; ``fields`` says which."""

    code = "invalid"
    status = 400
    message = "Some fields are invalid."
