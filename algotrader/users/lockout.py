"""The response django-axes returns for a locked-out login, in the API's error format."""

from typing import Any

from django.http import HttpRequest, JsonResponse

from algotrader.api.exception_handler import error_body
from algotrader.users.exceptions import AccountLocked


def lockout_response(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    return JsonResponse(error_body(AccountLocked.code, AccountLocked.message), status=AccountLocked.status)
