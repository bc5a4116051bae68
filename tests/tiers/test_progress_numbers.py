"""Tier progress as a person reads it (issue 11): one JSON type per field, quantities to two decimals,
and the dry-run evaluation shows the same progress as ``GET .../tier``."""

from decimal import Decimal

import pytest

from tests.events.test_ingestion import stay
from tiers.models import MemberTierAssignment, MemberTierChange
from tiers.progress import readable

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("value", "up", "expected"),
    [
        (Decimal("1500"), False, 1500),
        (Decimal("1500.000"), True, 1500),
        (Decimal("5850.5"), False, 5850.5),
        (Decimal("26.592"), False, 26.59),  # what is held rounds down
        (Decimal("14.408"), True, 14.41),  # what is needed rounds up
        (Decimal("0"), True, 0),
        (None, False, None),
    ],
)
def test_readable_numbers(value, up, expected):
    result = readable(value, up=up)
    assert result == expected
    assert type(result) is type(expected)


def test_fractional_nights_read_as_numbers_with_two_decimals(api, ann):
    assert api.post("/api/v1/member/ann/event", stay(nights="10.592"), format="json").status_code == 201
    (entry,) = api.get("/api/v1/member/ann/tier").json()
    nights, stays = entry["progress"]["criteria"]
    assert (nights["metric"], nights["current"], nights["required"], nights["remaining"], nights["met"]) == (
        "quantity:nights",
        10.59,
        25,
        14.41,
        False,
    )
    assert (stays["current"], stays["required"], stays["remaining"]) == (1, 15, 14)


def test_progress_fields_are_numbers_in_the_schema(api):
    schema = api.get("/api/v1/schema", HTTP_ACCEPT="application/json").json()
    criterion = schema["components"]["schemas"]["ProgressCriterion"]["properties"]
    for field in ("current", "required", "remaining"):
        assert (criterion[field]["type"], criterion[field]["nullable"]) == ("number", True)
    assert criterion["met"]["type"] == "boolean"


def test_dry_run_promotion_returns_the_progress_get_tier_shows_and_changes_nothing(api, ann):
    api.post("/api/v1/member/ann/event", stay(nights=10), format="json")
    shown = api.get("/api/v1/member/ann/tier").json()
    changes = MemberTierChange.objects.count()
    dry = api.post("/api/v1/member/ann/tier/promotion?dry_run=true")
    assert dry.status_code == 200
    assert dry.json() == {"dry_run": True, "tier_changes": [], "tiers": shown}
    assert dry.json()["tiers"][0]["progress"]["criteria"][0]["current"] == 10
    assert MemberTierChange.objects.count() == changes
    assert MemberTierAssignment.objects.get(member=ann).tier.code == "member"
