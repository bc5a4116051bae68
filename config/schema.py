"""The project's drf-spectacular ``AutoSchema``: error responses and optional codes, decided centrally.

Every operation documents the ``application/problem+json`` responses it can give, with the ``Problem``
schema, from what the operation is rather than from a list kept per view:

=======  ======================================================================================
status   documented on
=======  ======================================================================================
400      every operation: a malformed request (a body that is not JSON or empty where a document is
         expected; a request line or headers the HTTP server refuses)
401/403  every operation that needs a token (``public = True`` views need none)
404      operations with a path parameter (another tenant's id is a 404 too), paginated lists (a page
         past the end), and bodies that name a member (``member_id``)
409      every write (POST/PUT/PATCH/DELETE): idempotency conflicts, duplicate codes, objects in
         use, state conflicts
413/415  operations that take a request body (too large; not JSON). A DELETE that reads a body
         (``@extend_schema(request=...)``) documents it like a POST.
422      operations that take a request body or query parameters (``errors`` names the fields)
429      views with DRF throttles
=======  ======================================================================================

A view that documents one of these statuses itself (``@extend_schema(responses={409: ...})``) keeps
its description; the problem schema is added to it. A documented 4xx/5xx without content gets the
problem schema too.
"""

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import force_instance
from rest_framework import serializers

from config.errors import PROBLEM_CONTENT_TYPE
from config.serializers import OptionalSlugField, OptionalTextMixin

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

DESCRIPTIONS: dict[str, str] = {
    "400": "Malformed request: the body is not JSON, or empty where a document is expected "
    "(`malformed_json`, `malformed_request`); or a request line or headers too large for the server.",
    "401": "No token (`not_authenticated`) or a token that does not verify (`invalid_token`).",
    "403": "The token lacks the scope this operation needs (`insufficient_scope`).",
    "404": "Nothing with that id in the caller's tenant (`not_found`, `member_not_found`, ...), "
    "or a page past the last one.",
    "409": "Conflicts with the current state: `idempotency_conflict`, `duplicate_code`, `in_use`, "
    "`member_conflict`, and the operation's own state conflicts.",
    "413": "The request body is larger than `API_MAX_BODY_BYTES` (`payload_too_large`).",
    "415": "The body is not `application/json` (`unsupported_media_type`).",
    "422": "Invalid fields or query parameters (`validation_error`); `errors` maps each field to its messages.",
    "429": "Too many requests (`throttled`, `too_many_attempts`); `Retry-After` says when to retry (seconds).",
}


class ProblemSerializer(serializers.Serializer):
    """An RFC 9457 problem: every error of this API has this shape and a stable ``code``."""

    type = serializers.URLField(help_text="A URI naming the problem type (ends with the code).")
    title = serializers.CharField(help_text="The HTTP status phrase.")
    status = serializers.IntegerField(help_text="The HTTP status code.")
    detail = serializers.CharField(help_text="What went wrong, for a person.")
    code = serializers.CharField(help_text="Stable machine string, e.g. `validation_error`, `member_not_found`.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Validation errors: field name (dotted for nested fields) → messages.",
    )


class ProjectAutoSchema(AutoSchema):
    def problem_statuses(self) -> set[str]:
        """The problem statuses this operation can answer with (see the module's table)."""
        method = self.method.upper()
        statuses: set[str] = {"400"}
        if not getattr(self.view, "public", False):
            statuses |= {"401", "403"}
        body = self._documented_request() if method in WRITE_METHODS else None
        if body is not None:
            statuses |= {"413", "415", "422"}
            if "member_id" in getattr(force_instance(body), "fields", {}):
                statuses.add("404")
        parameters = self._get_parameters()
        if any(p.get("in") == "path" for p in parameters) or (self._is_list_view() and self._get_paginator()):
            statuses.add("404")
        if any(p.get("in") == "query" for p in parameters):
            statuses.add("422")
        if method in WRITE_METHODS:
            statuses.add("409")
        if getattr(self.view, "throttle_classes", None):
            statuses.add("429")
        return statuses

    def _documented_request(self) -> Any:
        """The request serializer, except the one a generic view would guess for a DELETE."""
        serializer = self.get_request_serializer()
        if serializer is None or self.method.upper() != "DELETE":
            return serializer
        guessed = getattr(self.view, "serializer_class", None)
        declared = serializer if isinstance(serializer, type) else type(serializer)
        return None if guessed is not None and declared is guessed else serializer

    def _get_request_body(self, direction: Any = "request") -> Any:
        if self.method == "DELETE" and self._documented_request() is not None:
            self.method = "POST"  # drf-spectacular documents bodies of PUT/PATCH/POST only
            try:
                return super()._get_request_body(direction)
            finally:
                self.method = "DELETE"
        return super()._get_request_body(direction)

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        problem = {PROBLEM_CONTENT_TYPE: {"schema": self.resolve_serializer(ProblemSerializer, "response").ref}}
        for status in self.problem_statuses():
            responses.setdefault(status, {"description": DESCRIPTIONS[status]})
        for status, response in responses.items():
            if status[0] in "45" and not response.get("content"):
                response["content"] = problem
            if status == "401":
                response.setdefault("headers", {})["WWW-Authenticate"] = {
                    "schema": {"type": "string"},
                    "description": 'Always `Bearer realm="privilege"`.',
                }
            if status == "429":
                response.setdefault("headers", {})["Retry-After"] = {
                    "schema": {"type": "integer"},
                    "description": "Seconds to wait before retrying.",
                }
        return dict(sorted(responses.items()))

    def _map_serializer_field(self, field: Any, direction: Any, bypass_extensions: bool = False) -> Any:
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if isinstance(field, OptionalTextMixin) and schema is not None:
            schema["nullable"] = True
            if isinstance(field, OptionalSlugField) and direction == "request":
                schema["pattern"] = "^[-a-zA-Z0-9_]*$"  # "" (like null) means none
            note = "(null when not set)" if direction == "response" else '(null or "" leaves it unset)'
            schema["description"] = f"{schema.get('description', '')} {note}".strip()
        return schema
