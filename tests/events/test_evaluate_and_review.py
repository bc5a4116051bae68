"""Evaluate-now endpoints (``/member/{id}/tier/promotion`` and ``/demotion``) and the periodic review."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from events.review import review_all, review_tenant
from members.models import Member
from tests.events.test_ingestion import stay
from tests.helpers import assert_problem
from tiers.models import MemberTierAssignment, MemberTierChange, TierReview

pytestmark = pytest.mark.django_db


def register(api, *ids):
    for external_id in ids:
        assert api.post("/api/v1/member", {"external_id": external_id}, format="json").status_code == 201
    return [Member.objects.get(external_id=i) for i in ids]


def put_without_claim(member, tier):
    """A member sitting in a tier with nothing that entitles them to it (claims ran out)."""
    MemberTierAssignment.objects.filter(member=member).update(tier=tier, granted_claims=[], valid_until=None)


def test_demotion_endpoint_dry_run_then_apply(api, ladder):
    (ann,) = register(api, "ann")
    put_without_claim(ann, ladder[1]["gold"])
    dry = api.post("/api/v1/member/ann/tier/demotion?dry_run=true")
    assert dry.status_code == 200
    body = dry.json()
    assert body["dry_run"] is True
    assert [(c["from"], c["to"], c["kind"]) for c in body["tier_changes"]] == [("gold", "member", "demotion")]
    assert [t["tier"] for t in body["tiers"]] == ["gold"]  # nothing changed
    assert MemberTierChange.objects.filter(member=ann, source="auto", to_tier__code="member").count() == 1
    applied = api.post("/api/v1/member/ann/tier/demotion").json()
    assert applied["dry_run"] is False
    assert [t["tier"] for t in applied["tiers"]] == ["member"]
    assert MemberTierChange.objects.filter(member=ann, from_tier__code="gold").count() == 1


def test_promotion_endpoint_applies_only_promotions(api, ladder):
    (ann,) = register(api, "ann")
    lock = (timezone.now() + timezone.timedelta(days=1)).isoformat()
    api.put(
        "/api/v1/member/ann/tier",
        {"tier_type": "hotel", "tier": "member", "reason": "hold", "lock_until": lock},
        format="json",
    )
    api.post("/api/v1/member/ann/event", stay(), format="json")  # qualifies for gold, but locked
    assert MemberTierAssignment.objects.get(member=ann).tier.code == "member"
    MemberTierAssignment.objects.filter(member=ann).update(lock_until=None)
    assert api.post("/api/v1/member/ann/tier/demotion").json()["tier_changes"] == []
    body = api.post("/api/v1/member/ann/tier/promotion").json()
    assert [(c["to"], c["rule"]) for c in body["tier_changes"]] == [("gold", "hotel-gold-by-nights")]
    assert MemberTierAssignment.objects.get(member=ann).tier.code == "gold"


def test_evaluate_endpoints_guard(api_client_for, tenant, other_tenant, api, ladder):
    register(api, "ann")
    reader = api_client_for(tenant, "privilege:read")
    assert_problem(reader.post("/api/v1/member/ann/tier/promotion"), 403, "insufficient_scope")
    stranger = api_client_for(other_tenant)
    assert_problem(stranger.post("/api/v1/member/ann/tier/demotion"), 404, "member_not_found")


def test_review_demotes_expired_members_once_and_resumes(api, tenant, ladder):
    members = register(api, "a", "b", "c", "d")
    for member in members[:3]:
        put_without_claim(member, ladder[1]["silver"])
    review = review_tenant(tenant=tenant, chunk_size=2)
    assert (review.members_reviewed, review.changes, review.finished_at is not None) == (4, 3, True)
    assert set(MemberTierAssignment.objects.values_list("tier__code", flat=True)) == {"member"}
    assert set(MemberTierChange.objects.filter(from_tier__code="silver").values_list("source", flat=True)) == {"review"}
    # Safe to run twice: the day's run is finished.
    put_without_claim(members[3], ladder[1]["silver"])
    again = review_tenant(tenant=tenant)
    assert (again.pk, again.members_reviewed) == (review.pk, 4)
    assert MemberTierAssignment.objects.get(member=members[3]).tier.code == "silver"


def test_review_resumes_after_an_interruption(api, tenant, ladder):
    members = register(api, "a", "b", "c")
    for member in members:
        put_without_claim(member, ladder[1]["silver"])
    run_date = timezone.localdate()
    TierReview.objects.create(tenant=tenant, run_date=run_date, last_member_pk=members[0].pk, members_reviewed=1)
    review = review_tenant(tenant=tenant, run_date=run_date)
    assert (review.members_reviewed, review.changes) == (3, 2)
    assert MemberTierAssignment.objects.get(member=members[0]).tier.code == "silver"  # before the cursor


def test_review_command_prints_progress(api, tenant, ladder):
    register(api, "a")
    out = StringIO()
    call_command("review_tiers", stdout=out)
    text = out.getvalue()
    assert "acme: [" in text
    assert "1/1" in text
    assert "1 members reviewed, 0 tier changes" in text


def test_review_skips_when_another_run_holds_the_lock(monkeypatch, tenant):
    from contextlib import contextmanager

    @contextmanager
    def held(name):
        yield False

    monkeypatch.setattr("events.review.advisory_lock", held)
    assert review_all() is None


def test_rebuild_metrics_command(api, ladder):
    register(api, "ann")
    api.post("/api/v1/member/ann/event", stay(), format="json")
    out = StringIO()
    call_command("rebuild_metrics", "--tenant", "acme", stdout=out)
    assert "Rebuilt the daily metrics of 1 members of acme." in out.getvalue()


def test_admin_lists_events_and_replays_dead_ones(client, api, tenant, other_tenant, ladder):
    from django.contrib.auth.models import Permission
    from django.urls import reverse

    from members.models import MemberEvent
    from tests.factories import TenantMembershipFactory, UserFactory

    register(api, "ann")
    api.post("/api/v1/member/ann/event", stay(), format="json")
    mine = MemberEvent.objects.get()
    MemberEvent.objects.filter(pk=mine.pk).update(status="dead", attempts=6)
    staff = UserFactory(username="ops")
    staff.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["events", "members"]))
    TenantMembershipFactory(user=staff, tenant=tenant)
    client.force_login(staff)
    changelist = reverse("admin:members_memberevent_changelist")
    page = client.get(changelist + "?status=dead")
    assert list(page.context["cl"].queryset) == [mine]
    assert client.get(reverse("admin:members_memberevent_change", args=[mine.pk])).status_code == 200
    response = client.post(changelist, {"action": "replay", "_selected_action": [mine.pk]})
    assert response.status_code == 302
    mine.refresh_from_db()
    assert mine.status in ("received", "processed")  # queued (evaluated at once when tasks run eagerly)
    from audit.models import AuditEntry

    assert AuditEntry.objects.filter(action="event.replayed", actor="user:ops").count() == 1


def test_tier_progress_says_what_is_still_needed(api, ladder):
    register(api, "ann")
    api.post("/api/v1/member/ann/event", stay(nights=10), format="json")
    (entry,) = api.get("/api/v1/member/ann/tier").json()
    assert entry["tier"] == "member"
    assert entry["progress"] == {
        "next_tier": "gold",
        "qualifies": False,
        "criteria": [
            {
                "rule": "hotel-gold-by-nights",
                "metric": "quantity:nights",
                "operator": "gte",
                "current": 10,
                "required": 25,
                "remaining": 15,
                "met": False,
            },
            {
                "rule": "hotel-gold-by-nights",
                "metric": "quantity:stays",
                "operator": "gte",
                "current": 1,
                "required": 15,
                "remaining": 14,
                "met": False,
            },
        ],
    }
    api.post("/api/v1/member/ann/event", stay("pos-2", nights=20), format="json")
    (entry,) = api.get("/api/v1/member/ann/tier").json()
    assert entry["tier"] == "gold"
    assert entry["progress"] is None  # platinum is not climbable: nothing above to work towards


def test_progress_query_count_is_bounded(api, ladder, django_assert_max_num_queries):
    register(api, "ann")
    for i in range(5):
        api.post("/api/v1/member/ann/event", stay(f"p{i}", nights=1), format="json")
    with django_assert_max_num_queries(8):
        assert api.get("/api/v1/member/ann/tier").status_code == 200
