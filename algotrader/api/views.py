"""JSON answers for errors raised outside DRF views (unknown URLs, crashes), so a
client of the API never has to parse an HTML error page."""

from django.http import HttpRequest, HttpResponse, JsonResponse

from algotrader.api.exception_handler import error_body


def json_bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    # Django's own 400s (a Host not allowed, a body over the upload limit) raised before any view.
    return JsonResponse(error_body("bad_request", "Bad request."), status=400)


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return JsonResponse(error_body("not_found", "Not found."), status=404)


def json_server_error(request: HttpRequest) -> HttpResponse:
    return JsonResponse(error_body("server_error", "Internal server error."), status=500)
