"""Request-level middleware: request ids, the access log and latency metric, and problem+json errors
for anything raised outside DRF (Django views, oversized bodies)."""

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from config.api import problem_for_exception
from config.errors import problem_response
from config.metrics import REQUEST_LATENCY
from config.tracing import accept_request_id, request_id_context

access_log = logging.getLogger("privilege.access")
error_log = logging.getLogger("privilege.errors")


def is_api_path(path: str) -> bool:
    """Paths whose errors are problem+json (everything but the HTML admin)."""
    return not path.startswith(("/admin/", "/static/"))


_GENERIC_CODES = {
    400: "bad_request",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    500: "internal_error",
}
_GENERIC_DETAIL = {404: "Not found.", 405: "Method not allowed.", 500: "An internal error occurred."}


class RequestIdMiddleware:
    """Accept or generate ``X-Request-ID``, echo it, and write one access-log line per request.

    The line carries method, route pattern, status and duration; never the query string or body, which
    may contain personal data.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = accept_request_id(request.headers.get("X-Request-ID"))
        request.request_id = request_id  # type: ignore[attr-defined]
        started = time.perf_counter()
        with request_id_context(request_id):
            response = self.get_response(request)
            elapsed = time.perf_counter() - started
            match = getattr(request, "resolver_match", None)
            route = match.route if match is not None else "unmatched"
            REQUEST_LATENCY.labels(request.method, route, f"{response.status_code // 100}xx").observe(elapsed)
            tenant = getattr(getattr(request, "auth", None), "tenant", None)
            access_log.info(
                "request",
                extra={
                    "method": request.method,
                    "route": route,
                    "status": response.status_code,
                    "duration_ms": round(elapsed * 1000, 2),
                    "tenant": getattr(tenant, "slug", None),
                },
            )
        response["X-Request-ID"] = request_id
        return response


class ProblemDetailsMiddleware:
    """Refuse oversized API bodies before reading them, and render exceptions that escape non-DRF
    views as problem+json (the admin keeps Django's HTML pages)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_api_path(request.path):
            if "\x00" in request.path:  # no id can hold it, and PostgreSQL refuses it in a query
                return problem_response(
                    status=400, code="malformed_request", detail="The path contains a NUL character (%00)."
                )
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return problem_response(status=400, code="malformed_request", detail="Invalid Content-Length.")
            if length > settings.API_MAX_BODY_BYTES:
                return problem_response(
                    status=413,
                    code="payload_too_large",
                    detail=f"The request body exceeds {settings.API_MAX_BODY_BYTES} bytes.",
                )
        response = self.get_response(request)
        if (
            response.status_code >= 400
            and is_api_path(request.path)
            and not response.get("Content-Type", "").startswith(("application/problem+json", "application/json"))
        ):
            # Django's own pages (the resolver's 404, DEBUG's technical pages) become problem+json.
            return problem_response(
                status=response.status_code,
                code=_GENERIC_CODES.get(response.status_code, "error"),
                detail=_GENERIC_DETAIL.get(response.status_code, "The request failed."),
            )
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_api_path(request.path):
            return None
        response = problem_for_exception(exception)
        if response is None:
            error_log.error("unhandled error", exc_info=exception)
            response = problem_response(status=500, code="internal_error", detail="An internal error occurred.")
        return response
