"""``GET /member/{memberId}/tier?at=``: the tiers a member held at a past instant, from the tier history
(API.md "Time travel")."""

from datetime import timedelta
from urllib.parse import quote

import pytest
from django.utils import timezone

from tests.factories import MemberFactory
from tests.helpers import assert_problem
from tiers.models import MemberTierChange

pytestmark = pytest.mark.django_db

URL = "/api/v1/member/ann/tier"


def at(moment) -> str:
    return f"{URL}?at={quote(moment.isoformat())}"


def shift(member, **moves) -> None:
    """Put the member's history rows at known instants: {row index (oldest first): instant}."""
    rows = list(MemberTierChange.objects.filter(member=member).order_by("at", "id"))
    for index, moment in moves.items():
        MemberTierChange.objects.filter(pk=rows[int(index[1:])].pk).update(at=moment)


def test_the_tier_held_before_and_after_a_manual_change(api, ann, ladder):
    lock = (timezone.now() + timedelta(days=40)).replace(microsecond=0)
    response = api.put(
        URL,
        {"tier_type": "hotel", "tier": "gold", "reason": "status match", "lock_until": lock.isoformat()},
        format="json",
    )
    assert response.status_code == 200, response.content
    now = timezone.now()
    registered, promoted = now - timedelta(days=30), now - timedelta(days=10)
    shift(ann, r0=registered, r1=promoted)

    before = api.get(at(registered - timedelta(seconds=1)))
    assert (before.status_code, before.json()) == (200, [])  # not yet a member of the ladder

    on_member = api.get(at(promoted - timedelta(days=1))).json()
    assert [(t["tier_type"], t["tier"], t["since"], t["source"], t["progress"]) for t in on_member] == [
        ("hotel", "member", registered.isoformat().replace("+00:00", "Z"), "auto", None)
    ]

    on_gold = api.get(at(promoted)).json()  # the instant of the change: the change has happened
    assert [(t["tier"], t["rank"], t["since"], t["source"], t["locked_until"]) for t in on_gold] == [
        ("gold", 3, promoted.isoformat().replace("+00:00", "Z"), "manual", lock.isoformat().replace("+00:00", "Z"))
    ]
    # the same instant written in Bangkok time is the same instant
    bangkok = promoted.astimezone(timezone.get_fixed_timezone(7 * 60))
    assert api.get(at(bangkok)).json() == on_gold


def test_a_change_that_keeps_the_tier_does_not_restart_since_and_a_removal_leaves_nothing(api, ann, ladder):
    for body in (
        {"tier_type": "hotel", "tier": "gold", "reason": "match"},
        {
            "tier_type": "hotel",
            "tier": "gold",
            "reason": "new lock",
            "lock_until": (timezone.now() + timedelta(days=9)).isoformat(),
        },
    ):
        assert api.put(URL, body, format="json").status_code == 200
    assert api.delete(URL, {"tier_type": "hotel", "reason": "left the program"}, format="json").status_code == 204
    now = timezone.now()
    rows = list(MemberTierChange.objects.filter(member=ann).order_by("at", "id"))
    assert [(r.from_tier and r.from_tier.code, r.to_tier and r.to_tier.code) for r in rows] == [
        (None, "member"),
        ("member", "gold"),
        ("gold", "gold"),
        ("gold", None),
    ]
    moments = [now - timedelta(days=d) for d in (40, 30, 20, 10)]
    shift(ann, **{f"r{i}": m for i, m in enumerate(moments)})

    kept = api.get(at(moments[2] + timedelta(days=1))).json()
    assert [(t["tier"], t["since"]) for t in kept] == [("gold", moments[1].isoformat().replace("+00:00", "Z"))]
    assert api.get(at(moments[3])).json() == []  # removed
    assert [t["tier"] for t in api.get(URL).json()] == []  # and now too


def test_at_must_be_a_past_instant_with_its_offset(api, ann):
    for value, says in (
        ("2026-03-01T00:00:00", "UTC offset"),
        ("yesterday", "ISO 8601"),
        ("2026-03-01T00:00:00+16:00", "-15:59 and +15:59"),
        ((timezone.now() + timedelta(hours=1)).isoformat(), "future"),
    ):
        body = assert_problem(api.get(f"{URL}?at={quote(value)}"), 422, "validation_error")
        assert says in body["errors"]["at"][0], (value, body)
    body = assert_problem(api.get(f"{URL}?at=2026-01-01T00:00:00Z&at=2026-02-01T00:00:00Z"), 422, "validation_error")
    assert body["errors"]["at"] == ["Given more than once."]


def test_another_tenants_member_an_anonymous_caller_and_a_small_scope(api, ann, other_tenant, api_client_for):
    MemberFactory(tenant=other_tenant, external_id="theirs")
    past = quote((timezone.now() - timedelta(days=1)).isoformat())
    assert_problem(api.get(f"/api/v1/member/theirs/tier?at={past}"), 404, "member_not_found")
    from rest_framework.test import APIClient

    assert_problem(APIClient().get(f"{URL}?at={past}"), 401, "not_authenticated")
    assert_problem(api_client_for(ann.tenant, "privilege:audit").get(f"{URL}?at={past}"), 403, "insufficient_scope")
