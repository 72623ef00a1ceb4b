"""Pagination with bounds: ``limit`` at most ``MAX_LIMIT``, and an ``offset`` or ``limit`` that
is not a small non-negative integer is a 400 with the parameter named, never a database error."""

from typing import Any

from drf_spectacular.utils import OpenApiParameter, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request

MAX_LIMIT = 200
MAX_OFFSET = 1_000_000


def query_int(request: Request, name: str, *, default: int, minimum: int, maximum: int) -> int:
    """An integer query parameter within bounds, or a 400 naming it."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > len(str(maximum)) or not minimum <= int(raw) <= maximum:
        raise ValidationError({name: [f"Must be an integer from {minimum} to {maximum}."]})
    return int(raw)


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    max_limit = MAX_LIMIT

    def get_limit(self, request: Request) -> int:
        default = min(int(self.default_limit or MAX_LIMIT), MAX_LIMIT)
        return query_int(request, self.limit_query_param, default=default, minimum=1, maximum=MAX_LIMIT)

    def get_offset(self, request: Request) -> int:
        return query_int(request, self.offset_query_param, default=0, minimum=0, maximum=MAX_OFFSET)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            bound = MAX_LIMIT if parameter["name"] == self.limit_query_param else MAX_OFFSET
            parameter["schema"].update({"minimum": 0 if bound == MAX_OFFSET else 1, "maximum": bound})
        return parameters


def paginated(output: type[serializers.Serializer[Any]], *, name: str) -> dict[str, Any]:
    """``extend_schema`` arguments for a list answered by ``BoundedLimitOffsetPagination``:
    the page object (count, next, previous, results) and its two parameters, as served."""
    page = inline_serializer(
        name=name,
        fields={
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": output(many=True),
        },
    )
    parameters = [
        OpenApiParameter("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, description="Page size."),
        OpenApiParameter(
            "offset", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET}, description="Items to skip."
        ),
    ]
    return {"responses": {200: page}, "parameters": parameters}
