"""JSON answers for errors raised outside DRF views (unknown URLs, crashes), so a
client of the API never has to parse an HTML error page."""

from django.http import HttpRequest, HttpResponse, JsonResponse

from algotrader.api.exception_handler import error_body


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return JsonResponse(error_body("not_found", "Not found."), status=404)


def json_server_error(request: HttpRequest) -> HttpResponse:
    return JsonResponse(error_body("server_error", "Internal server error."), status=500)
