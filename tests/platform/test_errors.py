"""Every error leaves as application/problem+json with a stable code; bad input is never a 5xx and
never stores anything; no stack trace leaves the process."""

import pytest
from django.test import Client

from audit.models import AuditEntry
from tests.helpers import assert_problem

pytestmark = pytest.mark.django_db

AUDIT_URL = "/api/v1/audit"


@pytest.fixture
def raising_urls(settings):
    settings.ROOT_URLCONF = "tests.platform.urls_raising"


def test_malformed_json_is_400(api):
    response = api.post(AUDIT_URL, data='{"action": ', content_type="application/json")
    assert_problem(response, 400, "malformed_json")
    assert AuditEntry.objects.count() == 0


def test_empty_body_is_400_not_a_missing_field(api):
    response = api.post(AUDIT_URL, data="", content_type="application/json")
    assert_problem(response, 400, "malformed_request")
    assert AuditEntry.objects.count() == 0


def test_an_empty_object_is_422_for_the_missing_fields(api):
    response = api.post(AUDIT_URL, data="{}", content_type="application/json")
    assert assert_problem(response, 422, "validation_error")["errors"] == {"action": ["This field is required."]}


def test_whitespace_body_is_400(api):
    assert_problem(api.post(AUDIT_URL, data="   ", content_type="application/json"), 400, "malformed_request")


def test_wrong_content_type_is_415(api):
    response = api.post(AUDIT_URL, data="action=x", content_type="application/x-www-form-urlencoded")
    assert_problem(response, 415, "unsupported_media_type")
    assert AuditEntry.objects.count() == 0


def test_oversized_body_is_413_before_reading(api, settings):
    settings.API_MAX_BODY_BYTES = 1024
    big = '{"action": "x", "reason": "' + "a" * 2000 + '"}'
    assert_problem(api.post(AUDIT_URL, data=big, content_type="application/json"), 413, "payload_too_large")
    assert AuditEntry.objects.count() == 0


def test_body_without_content_length_or_chunking_is_empty(api, settings):
    """Without Content-Length and without chunked transfer coding an HTTP request has no body (chunked
    bodies are read by config.wsgi; see tests/platform/test_chunked.py)."""
    settings.API_MAX_BODY_BYTES = 1024
    big = ('{"action": "x", "reason": "' + "a" * 2000 + '"}').encode()
    response = api.generic("POST", AUDIT_URL, data=big, content_type="application/json", CONTENT_LENGTH="")
    assert_problem(response, 400, "malformed_request")
    assert AuditEntry.objects.count() == 0


def test_parser_stops_reading_past_the_limit(settings):
    """The parser's own bound, for streams whose declared length is not trusted."""
    import io

    from config.api import BoundedJSONParser
    from config.errors import PayloadTooLarge

    settings.API_MAX_BODY_BYTES = 10
    with pytest.raises(PayloadTooLarge):
        BoundedJSONParser().parse(io.BytesIO(b'{"a": "0123456789"}'))
    assert BoundedJSONParser().parse(io.BytesIO(b'{"a": 1}')) == {"a": 1}


def test_invalid_content_length_is_400(api):
    response = api.generic("POST", AUDIT_URL, data=b"{}", content_type="application/json", CONTENT_LENGTH="abc")
    assert_problem(response, 400, "malformed_request")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "action"),
        ({"action": "Not Valid!"}, "action"),
        ({"action": "x" * 101}, "action"),
        ({"action": "ok", "reason": "r" * 2001}, "reason"),
        ({"action": "ok", "member_id": ["not", "a", "string"]}, "member_id"),
    ],
    ids=["missing", "pattern", "too-long", "reason-too-long", "wrong-type"],
)
def test_validation_error_is_422_naming_the_field(api, body, field):
    body_out = assert_problem(api.post(AUDIT_URL, data=body, format="json"), 422, "validation_error")
    assert list(body_out["errors"]) == [field]
    assert all(isinstance(m, str) for m in body_out["errors"][field])
    assert AuditEntry.objects.count() == 0


def test_json_array_body_is_422(api):
    body = assert_problem(api.post(AUDIT_URL, data=[1, 2], format="json"), 422, "validation_error")
    assert "non_field_errors" in body["errors"]


def test_unknown_api_path_is_404_problem(api):
    assert_problem(api.get("/api/v1/no/such/thing"), 404, "not_found")


def test_unknown_api_path_is_404_problem_even_in_debug(api, settings):
    settings.DEBUG = True
    assert_problem(api.get("/api/v1/no/such/thing"), 404, "not_found")


def test_method_not_allowed_is_405(api):
    assert_problem(api.delete(AUDIT_URL), 405, "method_not_allowed")


def test_invalid_filter_is_422(api):
    body = assert_problem(api.get(AUDIT_URL, {"since": "yesterday-ish"}), 422, "validation_error")
    assert list(body["errors"]) == ["since"]


def test_unhandled_exception_is_500_without_details(raising_urls):
    client = Client(raise_request_exception=False)
    body = assert_problem(client.get("/api/v1/test/boom"), 500, "internal_error")
    assert "secret" not in str(body)


def test_unhandled_exception_in_plain_django_view_is_500_problem(raising_urls):
    client = Client(raise_request_exception=False)
    body = assert_problem(client.get("/api/v1/test/django-boom"), 500, "internal_error")
    assert "secret" not in str(body)


def test_unhandled_exception_in_debug_still_hides_the_trace(raising_urls, settings):
    settings.DEBUG = True
    client = Client(raise_request_exception=False)
    body = assert_problem(client.get("/api/v1/test/boom"), 500, "internal_error")
    assert "secret" not in str(body)


def test_domain_errors_keep_their_code(raising_urls):
    client = Client()
    assert_problem(client.get("/api/v1/test/domain"), 409, "conflict")
    body = assert_problem(client.get("/api/v1/test/domain?kind=invalid"), 422, "validation_error")
    assert body["errors"] == {"email": ["Enter a valid email address."]}


def test_admin_keeps_html_errors(client):
    response = client.get("/admin/no-such-page/")
    assert response["Content-Type"].startswith("text/html")


# --- request ids ----------------------------------------------------------------------------------
def test_request_id_is_generated_and_echoed(api):
    response = api.get(AUDIT_URL)
    assert len(response["X-Request-ID"]) == 32


def test_request_id_is_accepted_and_stored_as_correlation_id(api):
    response = api.post(AUDIT_URL, data={"action": "x.y"}, format="json", HTTP_X_REQUEST_ID="req-abc.123")
    assert response["X-Request-ID"] == "req-abc.123"
    assert AuditEntry.objects.get().correlation_id == "req-abc.123"
    assert response.json()["correlation_id"] == "req-abc.123"


def test_unsafe_request_id_is_replaced(api):
    response = api.get(AUDIT_URL, HTTP_X_REQUEST_ID="bad id\nwith newline")
    assert response["X-Request-ID"] != "bad id\nwith newline"
    assert len(response["X-Request-ID"]) == 32


def test_errors_carry_the_request_id_too(client):
    response = client.get("/api/v1/audit", HTTP_X_REQUEST_ID="trace-401")
    assert response.status_code == 401
    assert response["X-Request-ID"] == "trace-401"


def test_access_log_is_one_json_line_with_request_id_and_no_query(api, capsys):
    import json
    import logging

    from config.tracing import JsonFormatter, RequestIdFilter

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("privilege.access")
    logger.addHandler(handler)
    try:
        api.get(AUDIT_URL + "?member_id=ann@example.com", HTTP_X_REQUEST_ID="log-1")
    finally:
        logger.removeHandler(handler)
    line = JsonFormatter().format(records[-1])
    assert "\n" not in line
    payload = json.loads(line)
    assert payload["request_id"] == "log-1"
    assert payload["route"] == "api/v1/audit"
    assert payload["status"] == 200
    assert payload["tenant"] == "acme"
    assert "ann@example.com" not in line
