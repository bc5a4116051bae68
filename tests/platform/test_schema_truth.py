"""The OpenAPI schema tells the truth (issue 11 §9, §10).

§9: optional codes and emails are stored as "" but "" is no slug nor email address: responses give
null, requests may send null or "" (both stored as ""), and the schema says so.
§10: every operation documents its problem+json error responses with the Problem schema, decided
centrally by ``config.schema.ProjectAutoSchema``.
"""

from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator

from benefits.models import Benefit
from members.models import Member
from points.models import PointConversionRule, PointModifier
from tiers.models import TierType

pytestmark = pytest.mark.django_db

PROBLEM_REF = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


# (create path, minimal body, optional fields, model)
OPTIONAL_CODES = [
    ("/api/v1/tier/type", {"code": "hotel", "name": "Hotel"}, ["product", "partner"], TierType),
    (
        "/api/v1/point-conversion/rule",
        {"code": "base", "unit_amount": "1.00"},
        ["product", "partner", "quantity_name"],
        PointConversionRule,
    ),
    ("/api/v1/point-conversion/modifier", {"code": "double"}, ["product", "partner"], PointModifier),
    ("/api/v1/benefit", {"code": "late", "name": "Late checkout"}, ["exclusive_group"], Benefit),
]


@pytest.mark.parametrize(("path", "body", "fields", "model"), OPTIONAL_CODES)
@pytest.mark.parametrize("none", ["", None, "omitted"])
def test_an_unset_optional_code_is_stored_blank_and_read_as_null(api, tenant, path, body, fields, model, none):
    sent = dict(body) if none == "omitted" else {**body, **dict.fromkeys(fields, none)}
    created = api.post(path, sent, format="json")
    assert created.status_code == 201, created.content
    assert {f: created.json()[f] for f in fields} == dict.fromkeys(fields, None)
    row = model.objects.get(tenant=tenant, code=body["code"])
    assert {f: getattr(row, f) for f in fields} == dict.fromkeys(fields, "")
    read = api.get(f"{path}/{row.pk}")
    assert {f: read.json()[f] for f in fields} == dict.fromkeys(fields, None)
    listed = api.get(path).json()["results"]
    assert [{f: item[f] for f in fields} for item in listed] == [dict.fromkeys(fields, None)]


@pytest.mark.parametrize(("path", "body", "fields", "model"), OPTIONAL_CODES)
def test_a_set_optional_code_round_trips_and_null_clears_it(api, tenant, path, body, fields, model):
    created = api.post(path, {**body, **dict.fromkeys(fields, "spa")}, format="json")
    assert created.status_code == 201, created.content
    assert {f: created.json()[f] for f in fields} == dict.fromkeys(fields, "spa")
    row = model.objects.get(tenant=tenant, code=body["code"])
    cleared = api.patch(f"{path}/{row.pk}", dict.fromkeys(fields, None), format="json")
    assert cleared.status_code == 200, cleared.content
    assert {f: cleared.json()[f] for f in fields} == dict.fromkeys(fields, None)
    row.refresh_from_db()
    assert {f: getattr(row, f) for f in fields} == dict.fromkeys(fields, "")


@pytest.mark.parametrize(("path", "body", "fields", "model"), OPTIONAL_CODES)
def test_a_malformed_optional_code_is_still_refused(api, tenant, path, body, fields, model):
    response = api.post(path, {**body, fields[0]: "not a slug"}, format="json")
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert list(response.json()["errors"]) == [fields[0]]
    assert not model.objects.filter(tenant=tenant).exists()


def test_a_member_without_email_reads_null_and_one_with_email_reads_it(api, tenant):
    bare = api.post("/api/v1/member", {"external_id": "m-1"}, format="json")
    assert bare.status_code == 201, bare.content
    assert bare.json()["email"] is None
    assert Member.objects.get(tenant=tenant, external_id="m-1").email == ""
    assert api.get("/api/v1/member/m-1").json()["email"] is None
    mailed = api.post("/api/v1/member", {"external_id": "m-2", "email": "Ann@Example.com"}, format="json")
    assert mailed.json()["email"] == "ann@example.com"
    assert [m["email"] for m in api.get("/api/v1/member?ordering=external_id").json()["results"]] in (
        [None, "ann@example.com"],
        ["ann@example.com", None],
    )


@pytest.mark.parametrize(
    ("component", "field"),
    [
        ("TierTypeOutput", "product"),
        ("TierTypeOutput", "partner"),
        ("ConversionRuleOutput", "product"),
        ("ConversionRuleOutput", "partner"),
        ("ConversionRuleOutput", "quantity_name"),
        ("ModifierOutput", "product"),
        ("ModifierOutput", "partner"),
        ("BenefitOutput", "exclusive_group"),
        ("MemberOutput", "email"),
    ],
)
def test_the_schema_declares_optional_codes_nullable(schema, component, field):
    prop = schema["components"]["schemas"][component]["properties"][field]
    assert prop["nullable"] is True
    if field == "email":
        assert prop["format"] == "email"
    else:
        assert prop["pattern"] == "^[-a-zA-Z0-9_]+$"  # what a non-null value is
        request = schema["components"]["schemas"][component.replace("Output", "InputRequest")]["properties"][field]
        assert (request["nullable"], request["pattern"]) == (True, "^[-a-zA-Z0-9_]*$")


# --- §10: error responses ------------------------------------------------------------------------
def _operations(schema: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m.upper(), p): op for p, ops in schema["paths"].items() for m, op in ops.items()}


def test_every_operation_documents_its_errors_with_the_problem_schema(schema):
    operations = _operations(schema)
    assert len(operations) > 80
    for (method, path), op in operations.items():
        responses = op["responses"]
        errors = {s for s in responses if s[0] in "45"}
        for status in errors:
            assert responses[status]["content"] == PROBLEM_REF or path == "/api/v1/health", (method, path, status)
        assert "400" in errors, (method, path)  # a malformed request, whatever the operation
        if path == "/api/v1/health":
            assert errors == {"400", "503"}
            continue
        assert {"401", "403"} <= errors, (method, path)
        if "{" in path:
            assert "404" in errors, (method, path)
        if "requestBody" in op:
            assert {"413", "415", "422"} <= errors, (method, path)
        if method != "GET":
            assert "409" in errors, (method, path)
        assert responses["401"]["headers"]["WWW-Authenticate"]["schema"] == {"type": "string"}


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("GET", "/api/v1/member/{member_id}", {"200", "400", "401", "403", "404"}),
        ("GET", "/api/v1/member", {"200", "400", "401", "403", "404", "422"}),
        ("POST", "/api/v1/tier/type", {"201", "400", "401", "403", "409", "413", "415", "422"}),
        ("DELETE", "/api/v1/tier/type/{id}", {"204", "400", "401", "403", "404", "409"}),
        # a DELETE that reads a body documents it
        ("DELETE", "/api/v1/member/{member_id}/tier", {"204", "400", "401", "403", "404", "409", "413", "415", "422"}),
        # a body naming a member: an unknown one is a 404
        ("POST", "/api/v1/notification/send", {"202", "400", "401", "403", "404", "409", "413", "415", "422"}),
        ("POST", "/api/v1/events/batch", {"202", "400", "401", "403", "409", "413", "415", "422"}),
        ("GET", "/api/v1/point-policy", {"200", "400", "401", "403"}),
        (
            "POST",
            "/api/v1/member/{member_id}/event-code/redeem",
            {"201", "400", "401", "403", "404", "409", "413", "415", "422", "429"},
        ),
    ],
)
def test_operations_document_exactly_the_statuses_they_can_answer(schema, method, path, statuses):
    responses = _operations(schema)[(method, path)]["responses"]
    assert set(responses) == statuses


def test_a_delete_with_a_body_documents_it(schema):
    body = _operations(schema)[("DELETE", "/api/v1/member/{member_id}/tier")]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/MemberTierRemoveInputRequest"
    }


def test_a_view_documented_error_keeps_its_words_and_gets_the_problem_schema(schema):
    redeem = _operations(schema)[("POST", "/api/v1/member/{member_id}/event-code/redeem")]["responses"]
    assert "code_limit_reached" in redeem["409"]["description"]
    assert redeem["409"]["content"] == PROBLEM_REF
    assert redeem["429"]["headers"]["Retry-After"]["schema"] == {"type": "integer"}


def test_the_problem_schema_matches_what_errors_look_like(schema, api):
    problem = schema["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "code"}
    assert set(problem["properties"]) == {"type", "title", "status", "detail", "code", "errors"}
    body = api.post("/api/v1/tier/type", {"code": "no good"}, format="json").json()
    assert set(body) == {"type", "title", "status", "detail", "code", "errors"}
    assert set(body["errors"]) == {"code", "name"}


def test_a_simulation_run_reads_as_its_schema_says(
    schema, api, tenant, eager_tasks, django_capture_on_commit_callbacks
):
    """The run renames ``starts``/``ends`` to ``from``/``to``: the schema names what is returned (a
    fuzzer found ``ends`` declared and ``to`` returned)."""
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post("/api/v1/simulation/run", {"from": "2026-01-01", "to": "2026-06-30"}, format="json")
    assert created.status_code == 202, created.content
    declared = schema["components"]["schemas"]["RunOutput"]
    for body in (created.json(), api.get(created.json()["url"]).json()):
        assert set(body) == set(declared["properties"]) == set(declared["required"])
        assert (body["from"], body["to"]) == ("2026-01-01", "2026-06-30")
