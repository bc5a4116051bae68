"""API plumbing shared by every app: scopes, the problem+json exception handler, parsing, pagination.

Views stay thin: they declare the scopes they need (``read_scope`` / ``write_scope``), parse with a
serializer, call a service or selector with ``tenant_of(request)``, and render.
"""

import json
import logging
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions, pagination, parsers, permissions
from rest_framework.request import Request

from config import inputs
from config.errors import DomainError, Invalid, PayloadTooLarge, problem_response

logger = logging.getLogger("privilege.api")

SCOPE_READ = "privilege:read"
SCOPE_WRITE = "privilege:write"
SCOPE_ADMIN = "privilege:admin"
SCOPE_AUDIT = "privilege:audit"
ALL_SCOPES = (SCOPE_READ, SCOPE_WRITE, SCOPE_ADMIN, SCOPE_AUDIT)

# A broader scope covers the narrower ones: admin can do what write can, write what read can.
# privilege:audit stands alone (audit data is not part of read).
_IMPLIED: dict[str, frozenset[str]] = {
    SCOPE_ADMIN: frozenset({SCOPE_ADMIN, SCOPE_WRITE, SCOPE_READ}),
    SCOPE_WRITE: frozenset({SCOPE_WRITE, SCOPE_READ}),
    SCOPE_READ: frozenset({SCOPE_READ}),
    SCOPE_AUDIT: frozenset({SCOPE_AUDIT}),
}


def effective_scopes(granted: frozenset[str] | set[str]) -> frozenset[str]:
    out: set[str] = set()
    for scope in granted:
        out |= _IMPLIED.get(scope, frozenset({scope}))
    return frozenset(out)


def tenant_of(request: Request) -> Any:  # tenancy.models.Tenant (config must not import apps)
    """The tenant of the authenticated caller: always from the token, never from the URL or body."""
    return request.auth.tenant


def require_well_formed_body(request: Request) -> None:
    """For operations that take no body: a body that is sent must still parse (malformed JSON is a
    400, not silently ignored)."""
    _ = request.data


def boolean_query_param(request: Request, name: str, *, default: bool = False) -> bool:
    """A boolean query parameter under the strict rule of ``config.inputs.parse_boolean``: an
    unrecognised value (``on``, ``yes``, an empty one) is a 422 naming it, never a guess."""
    raws = request.query_params.getlist(name)
    if not raws:
        return default
    try:
        values = [inputs.parse_boolean(raw) for raw in raws]
    except ValueError as exc:
        raise Invalid(errors={name: [str(exc)]}) from exc
    if len(set(values)) > 1:
        raise Invalid(errors={name: ["Given more than once with different values."]})
    return values[0]


def instant_query_param(request: Request, name: str) -> datetime | None:
    """An ISO 8601 date-time query parameter with its UTC offset (``Z`` or ``+07:00``), or None when
    absent. A value without an offset, with an offset beyond ±15:59, out of range or given twice is a
    422 naming it: an instant is never guessed in some time zone."""
    raws = request.query_params.getlist(name)
    if not raws:
        return None
    if len(raws) > 1:
        raise Invalid(errors={name: ["Given more than once."]})
    try:
        value = parse_datetime(raws[0].strip())
    except ValueError:
        value = None
    if value is None:
        raise Invalid(errors={name: ["Not an ISO 8601 date-time (e.g. 2026-03-01T00:00:00Z)."]})
    if value.tzinfo is None:
        raise Invalid(errors={name: ["Give the UTC offset (Z or e.g. +07:00): the instant is ambiguous without it."]})
    problem = inputs.datetime_problem(value)
    if problem is not None:
        raise Invalid(errors={name: [problem]})
    return value


def scope_to_tenant(serializer: Any, fields: dict[str, Any], **querysets: Any) -> None:
    """Point a serializer's named related fields (single or many) at the caller's tenant, so another
    tenant's id is an ordinary "object does not exist" field error. Without a request (schema
    generation) they keep an empty queryset, so nothing outside the tenant ever resolves."""
    from rest_framework.relations import ManyRelatedField

    def relation(field: Any) -> Any:
        return field.child_relation if isinstance(field, ManyRelatedField) else field

    for name, queryset in querysets.items():
        if name in fields:
            relation(fields[name]).queryset = queryset.none()
    request = serializer.context.get("request")
    if request is None or request.auth is None:
        return
    tenant = tenant_of(request)
    for name, queryset in querysets.items():
        if name in fields:
            relation(fields[name]).queryset = queryset.filter(tenant=tenant)


class TenantQuerysetMixin:
    """For generic views: ``get_queryset`` asks ``tenant_queryset(tenant)`` (a selector call) with the
    caller's tenant. ``queryset`` names the model for schema generation, which has no request."""

    queryset: Any = None
    request: Request

    def tenant_queryset(self, tenant: Any) -> Any:
        raise ImproperlyConfigured(f"{type(self).__name__} must define tenant_queryset() (a selector call).")

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return self.tenant_queryset(tenant_of(self.request))


class HasScope(permissions.BasePermission):
    """Grants a request when the token carries the scope the view declares for its method.

    Views set ``read_scope`` (safe methods; default ``privilege:read``) and ``write_scope`` (others;
    default ``privilege:write``), or ``method_scopes`` per HTTP method where one view mixes them. A view
    with ``public = True`` needs no token at all.
    """

    message = "The token lacks the scope this operation needs."
    code = "insufficient_scope"

    def has_permission(self, request: Request, view: Any) -> bool:
        if getattr(view, "public", False):
            return True
        claims = request.auth
        if claims is None:
            raise exceptions.NotAuthenticated()
        needed = required_scope(view, request.method or "GET")
        return needed in effective_scopes(claims.scopes)


def required_scope(view: Any, method: str) -> str:
    """``view.method_scopes[method]`` if declared, else read for safe methods and write otherwise."""
    declared = getattr(view, "method_scopes", {}).get(method)
    if declared:
        return declared
    if method in permissions.SAFE_METHODS:
        return getattr(view, "read_scope", SCOPE_READ)
    return getattr(view, "write_scope", SCOPE_WRITE)


class BoundedJSONParser(parsers.JSONParser):
    """The one JSON parser of the API, where the body rules of ``config.inputs`` are enforced.

    Refuses bodies over ``API_MAX_BODY_BYTES`` (413; DRF reads the WSGI stream itself, so Django's
    ``DATA_UPLOAD_MAX_MEMORY_SIZE`` does not apply), empty or malformed documents and documents nested
    deeper than ``MAX_JSON_DEPTH`` (400, the latter before parsing), non-standard constants (``NaN``),
    and then any string, key or number PostgreSQL cannot store (422 naming the field).
    """

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        limit = settings.API_MAX_BODY_BYTES
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(f"The request body exceeds {limit} bytes.")
        if not raw.strip():
            raise exceptions.ParseError(EMPTY_BODY)
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = raw.decode(encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise exceptions.ParseError(f"JSON parse error - the body is not valid {encoding}.") from exc
        if inputs.exceeds_depth(text):
            raise exceptions.ParseError(
                f"JSON parse error - the document nests deeper than {inputs.MAX_JSON_DEPTH} levels."
            )
        overflowed: list[str] = []

        def parse_float(literal: str) -> float:
            value = float(literal)
            if math.isinf(value):
                overflowed.append(literal)
            return value

        try:
            document = json.loads(text, parse_constant=_refuse_constant, parse_float=parse_float)
        except (ValueError, RecursionError) as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from exc
        walk = overflowed or inputs.may_hold_bad_strings(text)
        problems = inputs.json_problems(document) if walk else {}
        if problems:
            raise exceptions.ValidationError(problems)
        return document


EMPTY_BODY = "The request body is empty; a JSON document was expected."


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def is_empty_write(request: Any) -> bool:
    """A POST/PUT/PATCH that carries no body at all (no bytes, not chunked)."""
    meta = request.META
    return (
        request.method in ("POST", "PUT", "PATCH")
        and str(meta.get("CONTENT_LENGTH") or "0") == "0"
        and "chunked" not in meta.get("HTTP_TRANSFER_ENCODING", "").lower()
    )


class PageNumberPagination(pagination.PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


# --- problem+json ---------------------------------------------------------------------------------
_DRF_CODES: dict[type[exceptions.APIException], tuple[int, str]] = {
    exceptions.ParseError: (400, "malformed_request"),
    exceptions.AuthenticationFailed: (401, "invalid_token"),
    exceptions.NotAuthenticated: (401, "not_authenticated"),
    exceptions.PermissionDenied: (403, "insufficient_scope"),
    exceptions.NotFound: (404, "not_found"),
    exceptions.MethodNotAllowed: (405, "method_not_allowed"),
    exceptions.NotAcceptable: (406, "not_acceptable"),
    exceptions.UnsupportedMediaType: (415, "unsupported_media_type"),
    exceptions.Throttled: (429, "throttled"),
}


def flatten_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error structure as ``{"field.sub": ["message", ...]}``."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, Mapping):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors" and prefix:
                name = prefix
            for field, messages in flatten_errors(value, name).items():
                out.setdefault(field, []).extend(messages)
    elif isinstance(detail, list | tuple):
        for index, item in enumerate(detail):
            if isinstance(item, Mapping | list | tuple):
                for field, messages in flatten_errors(item, f"{prefix}.{index}" if prefix else str(index)).items():
                    out.setdefault(field, []).extend(messages)
            else:
                out.setdefault(prefix or "non_field_errors", []).append(str(item))
    else:
        out.setdefault(prefix or "non_field_errors", []).append(str(detail))
    return out


def problem_for_exception(exc: BaseException) -> Any:
    """The problem+json response for any exception, or None for one we do not recognise."""
    if isinstance(exc, DomainError):
        return problem_response(
            status=exc.status, code=exc.code, detail=exc.detail, errors=exc.errors, headers=exc.headers
        )
    if isinstance(exc, exceptions.ValidationError | DjangoValidationError):
        detail = exc.detail if isinstance(exc, exceptions.ValidationError) else _django_errors(exc)
        return problem_response(
            status=422,
            code="validation_error",
            detail="The request has invalid fields.",
            errors=flatten_errors(detail),
        )
    if isinstance(exc, Http404):
        return problem_response(status=404, code="not_found", detail="Not found.")
    if isinstance(exc, RequestDataTooBig):
        return problem_response(status=413, code="payload_too_large", detail="The request body is too large.")
    if isinstance(exc, SuspiciousOperation):
        return problem_response(status=400, code="bad_request", detail="The request was refused.")
    if isinstance(exc, DjangoPermissionDenied):
        return problem_response(status=403, code="permission_denied", detail="Permission denied.")
    if isinstance(exc, exceptions.APIException):
        status, code = next((v for k, v in _DRF_CODES.items() if isinstance(exc, k)), (exc.status_code, "error"))
        headers: dict[str, str] = {}
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            headers["Retry-After"] = str(int(exc.wait))
        if status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="privilege"'
        if isinstance(exc, exceptions.ParseError) and "JSON parse error" in str(exc.detail):
            code = "malformed_json"
        return problem_response(status=status, code=code, detail=str(exc.detail), headers=headers)
    return None


def _django_errors(exc: DjangoValidationError) -> Any:
    if hasattr(exc, "error_dict"):
        return {
            ("non_field_errors" if field == "__all__" else field): [str(m) for e in errs for m in e.messages]
            for field, errs in exc.error_dict.items()
        }
    return list(exc.messages)


def problem_exception_handler(exc: BaseException, context: Mapping[str, Any]) -> Any:
    """DRF's EXCEPTION_HANDLER: every error leaves as problem+json, unknown ones as a bare 500."""
    from rest_framework.views import set_rollback  # not at import time: DRF imports this module early

    set_rollback()
    request = context.get("request")
    if isinstance(exc, exceptions.ValidationError) and request is not None and is_empty_write(request):
        # DRF hands an operation an empty dict when no body was sent at all; an operation that then
        # finds required fields missing was sent a malformed request, not a wrong field.
        exc = exceptions.ParseError(EMPTY_BODY)
    response = problem_for_exception(exc)
    if response is None:
        logger.error("unhandled error in API view", exc_info=exc)
        response = problem_response(status=500, code="internal_error", detail="An internal error occurred.")
    return response


# Path and header parameters many views document the same way.
MEMBER_ID = OpenApiParameter("member_id", str, OpenApiParameter.PATH, description="The member's external id.")
IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="Retry safely: the same key and body replay the original response for 24 hours.",
)
