"""The input rules of config/inputs.py (README "Input rules") hold on every endpoint: bodies that
PostgreSQL cannot store, nesting that would blow the parser's stack, out-of-range date-time offsets and
unrecognised booleans are refused with a 4xx naming the field, and nothing is stored."""

import json

import pytest

from audit.models import AuditEntry
from benefits.models import Benefit
from config import inputs
from members.models import Member, MemberEvent
from outbox.models import OutboxMessage
from tests.factories import MemberFactory
from tests.helpers import assert_problem

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
    """A valid event (tests.events.test_ingestion.stay) whose ``attributes`` is the given JSON text."""
    from tests.events.test_ingestion import stay

    return json.dumps({**stay("e1"), "attributes": "@ATTRIBUTES@"}).replace('"@ATTRIBUTES@"', attributes)


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


def test_the_event_body_of_these_tests_is_valid_without_the_bad_character(api, ann):
    response = post_raw(api, "/api/v1/member/ann/event", event_body('{"room": ["a", "b"]}'))
    assert response.status_code == 201, response.content
    assert MemberEvent.objects.get().attributes == {"room": ["a", "b"]}


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


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (json.dumps({"s": "[" * 5000 + '\\"{' * 100, "t": ["]" * 10]}), 2),
        ('{"a": "\\"[[[[", "b": [[[[1]]]]}', 5),  # an escaped quote: the slow path
        ('{"a": "[[[[", "b": [[[[1]]]]}', 5),  # none: the split path
        ('{"a": "x\\\\", "b": "[[[[[["}', 1),  # a string ending in an escaped backslash
    ],
)
def test_brackets_inside_strings_do_not_count_as_nesting(text, depth):
    json.loads(text)
    assert not inputs.exceeds_depth(text, limit=depth)
    assert inputs.exceeds_depth(text, limit=depth - 1)


def test_a_huge_float_inside_a_string_is_just_a_string(api):
    response = post_raw(api, "/api/v1/member", '{"external_id": "m1", "attributes": {"x": "1e400", "y": 1e300}}')
    assert response.status_code == 201, response.content


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


# --- date-time filters ---------------------------------------------------------------------------
DATE_FILTERS = [
    ("/api/v1/audit", "since"),
    ("/api/v1/audit", "until"),
    ("/api/v1/member", "registered_after"),
    ("/api/v1/member", "registered_before"),
    ("/api/v1/outbox", "created_after"),
    ("/api/v1/outbox", "created_before"),
]


@pytest.mark.parametrize(("url", "param"), DATE_FILTERS)
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-01-01T00:00:00+16:00", "The UTC offset must be within -15:59 and +15:59."),
        ("2026-01-01T00:00:00-16:00", "The UTC offset must be within -15:59 and +15:59."),
        ("2026-01-01T00:00:00+23:59", "The UTC offset must be within -15:59 and +15:59."),
        ("2026-01-01T00:00:00-1600", "The UTC offset must be within -15:59 and +15:59."),
        ("9999-12-31T23:00:00-10:00", "The date-time is out of range (years 1 to 9999 in UTC)."),
        ("0001-01-01T00:00:00+10:00", "The date-time is out of range (years 1 to 9999 in UTC)."),
    ],
)
def test_a_date_filter_out_of_range_is_422_naming_it(api, url, param, value, message):
    before = nothing_stored()
    body = assert_problem(api.get(url, {param: value}), 422, "validation_error")
    assert body["errors"] == {param: [message]}
    assert nothing_stored() == before


@pytest.mark.parametrize(("url", "param"), DATE_FILTERS)
@pytest.mark.parametrize("value", ["2026-01-01T00:00:00+15:59", "2026-01-01T00:00:00-15:59", "2026-01-01T00:00:00Z"])
def test_a_date_filter_within_range_is_accepted(api, url, param, value):
    assert api.get(url, {param: value}).status_code == 200


def test_a_date_filter_with_an_extreme_offset_filters_on_the_instant(api, tenant):
    MemberFactory(tenant=tenant, external_id="ann")  # registered now

    def ids(value: str) -> list[str]:
        response = api.get("/api/v1/member", {"registered_after": value})
        return [m["external_id"] for m in response.json()["results"]]

    assert ids("2000-01-01T00:00:00+15:59") == ["ann"]
    assert ids("2999-01-01T00:00:00-15:59") == []


# --- boolean query parameters --------------------------------------------------------------------
BAD_BOOLEANS = ["on", "t", "y", "yes", "TRUE ", " true", "", "2", "truee", "nope"]


@pytest.mark.parametrize(
    ("url", "param"),
    [
        ("/api/v1/benefit", "active"),
        ("/api/v1/benefit", "is_template"),
        ("/api/v1/event/code", "active"),
        ("/api/v1/tier/type", "active"),
    ],
)
@pytest.mark.parametrize("value", BAD_BOOLEANS)
def test_an_unrecognised_boolean_filter_is_422(api, url, param, value):
    body = assert_problem(api.get(url, {param: value}), 422, "validation_error")
    assert body["errors"] == {param: ["Must be true, false, 1 or 0."]}


@pytest.mark.parametrize(
    ("value", "codes"),
    [
        ("true", ["on"]),
        ("TRUE", ["on"]),
        ("1", ["on"]),
        ("True", ["on"]),
        ("false", ["off"]),
        ("0", ["off"]),
        ("FALSE", ["off"]),
    ],
)
def test_a_boolean_filter_reads_its_accepted_spellings(api, value, codes):
    for code, active in [("on", True), ("off", False)]:
        assert (
            api.post("/api/v1/benefit", {"code": code, "name": code, "active": active}, format="json").status_code
            == 201
        )
    assert [b["code"] for b in api.get("/api/v1/benefit", {"active": value}).json()["results"]] == codes


@pytest.fixture
def promotable(api, tenant):
    """ann qualifies for gold; only the evaluate-now endpoint would move her there."""
    from django.utils import timezone

    from tests.events.test_ingestion import stay
    from tests.factories import hotel_ladder
    from tiers.models import MemberTierAssignment

    hotel_ladder(tenant)
    assert api.post("/api/v1/member", {"external_id": "ann"}, format="json").status_code == 201
    lock = (timezone.now() + timezone.timedelta(days=1)).isoformat()
    body = {"tier_type": "hotel", "tier": "member", "reason": "hold", "lock_until": lock}
    assert api.put("/api/v1/member/ann/tier", body, format="json").status_code == 200
    assert api.post("/api/v1/member/ann/event", stay(), format="json").status_code == 201
    MemberTierAssignment.objects.filter(member__external_id="ann").update(lock_until=None)
    return MemberTierAssignment.objects.get(member__external_id="ann")


def tier_state() -> tuple:
    from tiers.models import MemberTierAssignment, MemberTierChange

    return (
        list(MemberTierAssignment.objects.values_list("tier__code", flat=True)),
        MemberTierChange.objects.count(),
        OutboxMessage.objects.count(),
        AuditEntry.objects.count(),
    )


@pytest.mark.parametrize("value", BAD_BOOLEANS)
@pytest.mark.parametrize("kind", ["promotion", "demotion"])
def test_an_unrecognised_dry_run_is_422_and_never_a_write(api, promotable, value, kind):
    before = tier_state()
    body = assert_problem(
        api.post(f"/api/v1/member/ann/tier/{kind}", QUERY_STRING=f"dry_run={value}"), 422, "validation_error"
    )
    assert body["errors"] == {"dry_run": ["Must be true, false, 1 or 0."]}
    assert tier_state() == before


def test_dry_run_given_twice_with_different_values_is_422(api, promotable):
    before = tier_state()
    response = api.post("/api/v1/member/ann/tier/promotion?dry_run=true&dry_run=false")
    assert_problem(response, 422, "validation_error")
    assert tier_state() == before


@pytest.mark.parametrize(
    ("value", "applied"), [("true", False), ("1", False), ("TRUE", False), (None, True), ("false", True), ("0", True)]
)
def test_dry_run_spellings(api, promotable, value, applied):
    before = tier_state()
    query = "" if value is None else f"?dry_run={value}"
    body = api.post(f"/api/v1/member/ann/tier/promotion{query}").json()
    assert body["dry_run"] is not applied
    assert [c["to"] for c in body["tier_changes"]] == ["gold"]
    assert (tier_state()[0] == ["gold"]) is applied
    assert (tier_state() == before) is not applied


@pytest.mark.parametrize("method", ["get", "post", "put", "delete"])
@pytest.mark.parametrize("path", ["/api/v1/member/a%00b", "/api/v1/member/a%00b/tier", "/api/v1/tier/type/%00/tier"])
def test_a_nul_in_the_path_is_400(api, ann, method, path):
    before = nothing_stored()
    body = assert_problem(getattr(api, method)(path), 400, "malformed_request")
    assert body["detail"] == "The path contains a NUL character (%00)."
    assert nothing_stored() == before
