"""The input rules of config/inputs.py (README "Input rules") hold on every endpoint: bodies that
PostgreSQL cannot store, nesting that would blow the parser's stack, out-of-range date-time offsets and
unrecognised booleans are refused with a 4xx naming the field, and nothing is stored."""

import json

import pytest

from audit.models import AuditEntry
from benefits.models import Benefit
from config import inputs
from events.models import MemberEvent
from members.models import Member
from outbox.models import OutboxMessage
from tests.conftest import assert_problem
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db

NUL = "\\u0000"  # as written in the JSON text
SURROGATE = "\\udfff"


def nothing_stored() -> dict[str, int]:
    return {
        "members": Member.objects.count(),
        "events": MemberEvent.objects.count(),
        "benefits": Benefit.objects.count(),
        "audit": AuditEntry.objects.count(),
        "outbox": OutboxMessage.objects.count(),
    }


def post_raw(api, url: str, text: str):
    return api.generic("POST", url, data=text.encode(), content_type="application/json")


def event_body(attributes: str) -> str:
    return (
        '{"event_id": "e1", "source": "pos", "type": "purchase", "occurred_at": "2026-01-01T10:00:00Z",'
        f' "amount": "10.00", "currency": "EUR", "attributes": {attributes}}}'
    )


# (url, JSON text with the bad character in place of {}, the field the 422 names)
def _cases(bad: str) -> list:
    return [
        pytest.param(
            "/api/v1/member",
            f'{{"external_id": "m1", "attributes": {{"x{bad}": 1}}}}',
            "attributes",
            id="member-attribute-key",
        ),
        pytest.param(
            "/api/v1/member",
            f'{{"external_id": "m1", "attributes": {{"x": "a{bad}"}}}}',
            "attributes.x",
            id="member-attribute-value",
        ),
        pytest.param("/api/v1/member", f'{{"external_id": "m{bad}1"}}', "external_id", id="member-external-id"),
        pytest.param(
            "/api/v1/member/ann/event",
            event_body(f'{{"room": ["a", "b{bad}"]}}'),
            "attributes.room.1",
            id="event-attribute",
        ),
        pytest.param(
            "/api/v1/benefit",
            f'{{"code": "drink", "name": "Drink", "value": {{"v": "{bad}"}}}}',
            "value.v",
            id="benefit-value",
        ),
        pytest.param(
            "/api/v1/audit",
            f'{{"action": "note", "after": {{"deep": [{{"k": "{bad}"}}]}}}}',
            "after.deep.0.k",
            id="audit-after",
        ),
        pytest.param(
            "/api/v1/event/publish",
            f'{{"type": "member.custom", "data": {{"k": "{bad}"}}}}',
            "data.k",
            id="publish-data",
        ),
    ]


@pytest.fixture
def ann(tenant):
    return MemberFactory(tenant=tenant, external_id="ann")


@pytest.mark.parametrize(("url", "text", "field"), _cases(NUL))
def test_nul_anywhere_in_a_json_body_is_422_naming_the_field(api, ann, url, text, field):
    before = nothing_stored()
    body = assert_problem(post_raw(api, url, text), 422, "validation_error")
    assert body["errors"] == {
        field: [
            inputs.string_problem("\x00")
            if field != "attributes"
            else "Keys must not contain the NUL character (U+0000)."
        ]
    }
    assert nothing_stored() == before


@pytest.mark.parametrize(("url", "text", "field"), _cases(SURROGATE))
def test_a_lone_surrogate_anywhere_in_a_json_body_is_422_naming_the_field(api, ann, url, text, field):
    before = nothing_stored()
    body = assert_problem(post_raw(api, url, text), 422, "validation_error")
    assert list(body["errors"]) == [field]
    assert "surrogate" in body["errors"][field][0]
    assert nothing_stored() == before


def test_a_surrogate_pair_is_a_character_and_is_stored(api):
    response = post_raw(api, "/api/v1/member", '{"external_id": "m1", "attributes": {"e": "\\ud83d\\ude00"}}')
    assert response.status_code == 201, response.content
    assert Member.objects.get().attributes == {"e": "\U0001f600"}


def test_a_number_out_of_float_range_is_422(api, ann):
    before = nothing_stored()
    body = assert_problem(
        post_raw(api, "/api/v1/member", '{"external_id": "m1", "attributes": {"x": 1e400}}'), 422, "validation_error"
    )
    assert body["errors"] == {"attributes.x": ["Numbers must be finite."]}
    assert nothing_stored() == before


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_constants_are_malformed(api, constant):
    response = post_raw(api, "/api/v1/member", f'{{"external_id": "m1", "attributes": {{"x": {constant}}}}}')
    assert_problem(response, 400, "malformed_json")
    assert Member.objects.count() == 0


@pytest.mark.parametrize("depth", [inputs.MAX_JSON_DEPTH + 1, 1000, 100_000])
def test_json_nested_past_the_limit_is_400_and_nothing_is_stored(api, ann, depth):
    before = nothing_stored()
    nested = "[" * depth + "]" * depth
    for url, text in [
        ("/api/v1/member", f'{{"external_id": "m1", "attributes": {{"x": {nested}}}}}'),
        ("/api/v1/audit", f'{{"action": "note", "after": {nested}}}'),
        ("/api/v1/member/ann/event", event_body(f'{{"x": {nested}}}')),
    ]:
        body = assert_problem(post_raw(api, url, text), 400, "malformed_json")
        assert f"deeper than {inputs.MAX_JSON_DEPTH}" in body["detail"]
    assert nothing_stored() == before


def test_nesting_up_to_the_limit_is_accepted(api):
    depth = inputs.MAX_JSON_DEPTH - 2  # the body object and "attributes" are two levels
    nested = '{"a": ' * depth + "1" + "}" * depth
    response = post_raw(api, "/api/v1/member", f'{{"external_id": "m1", "attributes": {nested}}}')
    assert response.status_code == 201, response.content


def test_brackets_inside_strings_do_not_count_as_nesting():
    text = json.dumps({"s": "[" * 5000 + '\\"{' * 100, "t": ["]" * 10]})
    assert not inputs.exceeds_depth(text, limit=3)
    assert inputs.exceeds_depth('[[[["x"]]]]', limit=3)


@pytest.mark.parametrize(
    "url",
    ["/api/v1/member", "/api/v1/audit", "/api/v1/member/ann/event", "/api/v1/benefit", "/api/v1/event/publish"],
)
def test_an_empty_body_on_a_post_that_needs_one_is_400(api, ann, url):
    before = nothing_stored()
    body = assert_problem(api.generic("POST", url, data=b"", content_type="application/json"), 400, "malformed_request")
    assert body["detail"] == "The request body is empty; a JSON document was expected."
    assert nothing_stored() == before


def test_an_empty_body_is_fine_where_the_operation_takes_none(api, ann):
    response = api.generic(
        "POST", "/api/v1/member/ann/tier/promotion?dry_run=true", data=b"", content_type="application/json"
    )
    assert response.status_code == 200, response.content
