"""Django's error handlers: problem+json everywhere but the HTML admin."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views import defaults

from config.errors import problem_response
from config.middleware import is_api_path


def home(request: HttpRequest) -> HttpResponse:
    return redirect("/api/v1/docs")


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_path(request.path):
        return problem_response(status=400, code="bad_request", detail="The request was malformed.")
    return defaults.bad_request(request, exception or Exception())


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_path(request.path):
        return problem_response(status=403, code="permission_denied", detail="Permission denied.")
    return defaults.permission_denied(request, exception or Exception())


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_path(request.path):
        return problem_response(status=404, code="not_found", detail="Not found.")
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if is_api_path(request.path):
        return problem_response(status=500, code="internal_error", detail="An internal error occurred.")
    return defaults.server_error(request)
