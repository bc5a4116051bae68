"""``/member/{memberId}/tier``: current tiers, default assignment, manual change and invitation
(DOMAIN §3.4), removal. Each change: a history row, an audit entry and a ``tier.changed`` message."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEntry
from members.models import Member
from outbox.models import OutboxMessage
from tests.factories import MemberFactory, TierFactory, hotel_ladder
from tests.helpers import assert_problem
from tiers.models import MemberTierAssignment, MemberTierChange

pytestmark = pytest.mark.django_db


URL = "/api/v1/member/ann/tier"


def _future(days: int = 30) -> str:
    return (timezone.now() + timedelta(days=days)).isoformat()


def test_get_lists_current_tiers(api, ann):
    body = api.get(URL).json()
    assert len(body) == 1
    entry = body[0]
    assert {
        k: entry[k] for k in ("tier_type", "tier", "rank", "source", "valid_until", "grace_until", "expires_at")
    } == {
        "tier_type": "hotel",
        "tier": "member",
        "rank": 1,
        "source": "auto",
        "valid_until": None,
        "grace_until": None,
        "expires_at": None,
    }


def test_grace_until_is_valid_until_plus_grace_days(api, ann, ladder):
    until = timezone.now() + timedelta(days=100)
    MemberTierAssignment.objects.filter(member=ann).update(valid_until=until)
    entry = api.get(URL).json()[0]
    assert entry["grace_until"] == (until + timedelta(days=90)).isoformat().replace("+00:00", "Z")


def test_manual_change_moves_member_with_history_audit_and_event(api, ann, ladder):
    lock = _future(60)
    response = api.put(
        URL,
        {"tier_type": "hotel", "tier": "platinum", "reason": "VIP match", "lock_until": lock},
        format="json",
        HTTP_X_REQUEST_ID="chg-1",
    )
    assert response.status_code == 200
    entry = response.json()[0]
    assert (entry["tier"], entry["rank"], entry["source"]) == ("platinum", 4, "manual")
    assert entry["locked_until"] is not None
    change = MemberTierChange.objects.filter(member=ann).order_by("-id").first()
    assert (change.from_tier.code, change.to_tier.code, change.source, change.reason, change.actor) == (
        "member",
        "platinum",
        "manual",
        "VIP match",
        "service:svc-test",
    )
    assert change.correlation_id == "chg-1"
    audit = AuditEntry.objects.filter(action="member.tier_changed", member_id="ann").order_by("-id").first()
    assert audit.before["tier"] == "member"
    assert audit.after["tier"] == "platinum"
    assert audit.reason == "VIP match"
    message = OutboxMessage.objects.filter(type="tier.changed").order_by("-sequence").first()
    assert message.data["from"] == "member"
    assert message.data["to"] == "platinum"
    assert message.data["source"] == "manual"
    assert message.correlation_id == "chg-1"


def test_manual_change_can_go_down_and_out_of_immutable(api, ann, ladder):
    _, tiers, _ = ladder
    tiers["gold"].immutable = True
    tiers["gold"].save()
    api.put(URL, {"tier_type": "hotel", "tier": "gold", "reason": "r"}, format="json")
    response = api.put(URL, {"tier_type": "hotel", "tier": "silver", "reason": "correction"}, format="json")
    assert response.status_code == 200
    assert response.json()[0]["tier"] == "silver"


def test_invitation_moves_up_even_to_a_non_climbable_tier(api, ann):
    body = {"tier_type": "hotel", "tier": "platinum", "reason": "invite", "source": "invitation"}
    response = api.put(URL, body, format="json")
    assert response.status_code == 200
    assert (response.json()[0]["tier"], response.json()[0]["source"]) == ("platinum", "invitation")


def test_invitation_cannot_move_down_or_sideways(api, ann):
    api.put(URL, {"tier_type": "hotel", "tier": "gold", "reason": "r"}, format="json")
    before = OutboxMessage.objects.count()
    for tier in ("silver", "gold"):
        body = {"tier_type": "hotel", "tier": tier, "reason": "invite", "source": "invitation"}
        assert_problem(api.put(URL, body, format="json"), 409, "invitation_not_upward")
    assert MemberTierAssignment.objects.get(member=ann).tier.code == "gold"
    assert OutboxMessage.objects.count() == before


def test_invitation_cannot_move_out_of_an_immutable_tier(api, ann, ladder):
    _, tiers, _ = ladder
    tiers["silver"].immutable = True
    tiers["silver"].save()
    api.put(URL, {"tier_type": "hotel", "tier": "silver", "reason": "r"}, format="json")
    body = {"tier_type": "hotel", "tier": "gold", "reason": "invite", "source": "invitation"}
    assert_problem(api.put(URL, body, format="json"), 409, "tier_immutable")
    assert MemberTierAssignment.objects.get(member=ann).tier.code == "silver"


def test_same_tier_updates_lock_without_tier_changed_event(api, ann):
    before = OutboxMessage.objects.count()
    response = api.put(
        URL, {"tier_type": "hotel", "tier": "member", "reason": "freeze", "lock_until": _future()}, format="json"
    )
    assert response.status_code == 200
    assert response.json()[0]["locked_until"] is not None
    assert OutboxMessage.objects.count() == before
    assert MemberTierChange.objects.filter(member=ann, reason="freeze").count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tier_type": "hotel", "tier": "gold"}, "reason"),
        ({"tier_type": "hotel", "tier": "gold", "reason": "   "}, "reason"),
        ({"tier_type": "nope", "tier": "gold", "reason": "r"}, "tier_type"),
        ({"tier_type": "hotel", "tier": "diamond", "reason": "r"}, "tier"),
        ({"tier_type": "hotel", "tier": "gold", "reason": "r", "source": "auto"}, "source"),
        ({"tier_type": "hotel", "tier": "gold", "reason": "r", "lock_until": "2001-01-01T00:00:00Z"}, "lock_until"),
        ({"tier_type": "hotel", "tier": "gold", "reason": "r", "expires_at": "yesterday"}, "expires_at"),
    ],
    ids=["no-reason", "blank-reason", "unknown-type", "unknown-tier", "bad-source", "past-lock", "bad-date"],
)
def test_invalid_change_is_422_and_changes_nothing(api, ann, body, field):
    changes = MemberTierChange.objects.count()
    errors = assert_problem(api.put(URL, body, format="json"), 422, "validation_error")["errors"]
    assert field in errors
    assert MemberTierChange.objects.count() == changes
    assert MemberTierAssignment.objects.get(member=ann).tier.code == "member"


def test_time_bound_tier_outside_its_window_is_refused(api, ann, ladder):
    tier_type, _, _ = ladder
    TierFactory(tier_type=tier_type, code="summer", rank=9, available_from=timezone.now() + timedelta(days=5))
    body = {"tier_type": "hotel", "tier": "summer", "reason": "campaign"}
    assert list(assert_problem(api.put(URL, body, format="json"), 422, "validation_error")["errors"]) == ["tier"]


def test_manual_change_needs_admin_scope(api_client_for, tenant, ann):
    client = api_client_for(tenant, "privilege:write")
    body = {"tier_type": "hotel", "tier": "gold", "reason": "r"}
    assert_problem(client.put(URL, body, format="json"), 403, "insufficient_scope")
    assert_problem(client.delete(URL, {"tier_type": "hotel", "reason": "r"}, format="json"), 403, "insufficient_scope")
    assert client.post(URL).status_code == 200  # assigning defaults is a member action (write)
    assert MemberTierAssignment.objects.get(member=ann).tier.code == "member"


def test_tier_endpoints_without_token_are_401(client, ann):
    assert_problem(client.get(URL), 401, "not_authenticated")


def test_another_tenants_member_is_404(api_client_for, other_tenant, ann):
    client = api_client_for(other_tenant)
    hotel_ladder(other_tenant)
    assert_problem(client.get(URL), 404, "member_not_found")
    body = {"tier_type": "hotel", "tier": "gold", "reason": "r"}
    assert_problem(client.put(URL, body, format="json"), 404, "member_not_found")
    assert_problem(client.delete(URL, {"tier_type": "hotel", "reason": "r"}, format="json"), 404, "member_not_found")
    assert MemberTierAssignment.objects.get(member=ann).tier.code == "member"


def test_another_tenants_tier_codes_are_unknown(api, ann, other_tenant):
    hotel_ladder(other_tenant, code="their-hotel")
    body = {"tier_type": "their-hotel", "tier": "gold", "reason": "r"}
    assert list(assert_problem(api.put(URL, body, format="json"), 422, "validation_error")["errors"]) == ["tier_type"]


def test_remove_then_assign_defaults(api, ann):
    response = api.delete(URL, {"tier_type": "hotel", "reason": "left program"}, format="json")
    assert response.status_code == 204
    assert api.get(URL).json() == []
    removal = MemberTierChange.objects.filter(member=ann).order_by("-id").first()
    assert (removal.to_tier, removal.reason) == (None, "left program")
    assert OutboxMessage.objects.filter(type="tier.changed").order_by("-sequence").first().data["to"] is None
    assert_problem(
        api.delete(URL, {"tier_type": "hotel", "reason": "again"}, format="json"), 404, "tier_assignment_not_found"
    )
    assert [t["tier"] for t in api.post(URL).json()] == ["member"]
    assert [t["tier"] for t in api.post(URL).json()] == ["member"]  # idempotent
    assert MemberTierAssignment.objects.filter(member=ann).count() == 1


def test_remove_requires_a_reason(api, ann):
    errors = assert_problem(api.delete(URL, {"tier_type": "hotel"}, format="json"), 422, "validation_error")["errors"]
    assert list(errors) == ["reason"]


def test_inactive_tier_types_are_not_assigned(api, tenant, ann):
    hotel_ladder(tenant, code="closed", active=False)
    api.post(URL)
    assert [t["tier_type"] for t in api.get(URL).json()] == ["hotel"]


def test_idempotency_key_replays_a_manual_change(api, ann):
    body = {"tier_type": "hotel", "tier": "gold", "reason": "VIP"}
    first = api.put(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = api.put(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert (first.status_code, again.status_code) == (200, 200)
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert MemberTierChange.objects.filter(reason="VIP").count() == 1
    other = {**body, "tier": "silver"}
    assert_problem(api.put(URL, other, format="json", HTTP_IDEMPOTENCY_KEY="k-1"), 409, "idempotency_conflict")
    assert MemberTierAssignment.objects.get(member=ann).tier.code == "gold"


def test_failed_request_does_not_burn_the_idempotency_key(api, ann):
    bad = {
        "tier_type": "hotel",
        "tier": "gold",
        "reason": "r",
        "source": "invitation",
        "lock_until": "2001-01-01T00:00:00Z",
    }
    assert api.put(URL, bad, format="json", HTTP_IDEMPOTENCY_KEY="k-2").status_code == 422
    good = {"tier_type": "hotel", "tier": "gold", "reason": "r"}
    assert api.put(URL, good, format="json", HTTP_IDEMPOTENCY_KEY="k-2").status_code == 200


def test_idempotency_keys_are_per_tenant(api, api_client_for, other_tenant, ann):
    hotel_ladder(other_tenant)
    MemberFactory(tenant=other_tenant, external_id="ann")
    other = api_client_for(other_tenant)
    other.post(URL)
    body = {"tier_type": "hotel", "tier": "gold", "reason": "VIP"}
    assert api.put(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="shared").status_code == 200
    response = other.put(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="shared")
    assert response.status_code == 200
    assert "Idempotent-Replayed" not in response


def test_suspended_member_can_still_be_changed_by_an_admin(api, ann):
    Member.objects.filter(pk=ann.pk).update(status="suspended")
    assert api.put(URL, {"tier_type": "hotel", "tier": "gold", "reason": "r"}, format="json").status_code == 200


def test_erased_member_cannot_change_tier(api, ann):
    Member.objects.filter(pk=ann.pk).update(status="erased")
    assert_problem(
        api.put(URL, {"tier_type": "hotel", "tier": "gold", "reason": "r"}, format="json"), 409, "member_erased"
    )


def test_expired_idempotency_keys_are_purged_and_the_key_can_be_reused(api, ann):
    from tenancy.models import IdempotencyKey
    from tenancy.tasks import purge_idempotency_keys

    body = {"tier_type": "hotel", "tier": "gold", "reason": "VIP"}
    assert api.put(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="k-9").status_code == 200
    assert purge_idempotency_keys() == 0
    IdempotencyKey.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert purge_idempotency_keys() == 1
    again = api.put(URL, {**body, "tier": "silver"}, format="json", HTTP_IDEMPOTENCY_KEY="k-9")
    assert (again.status_code, "Idempotent-Replayed" in again) == (200, False)


def test_a_crashed_requests_idempotency_key_is_free_again_once_its_lease_runs_out(api, ann):
    """A process killed mid-request cannot delete its record: it holds the key only for the lease
    (409 request_in_progress meanwhile), not for the 24-hour retention."""
    from tenancy.idempotency import lease_duration
    from tenancy.models import IdempotencyKey

    body = {"tier_type": "hotel", "tier": "gold", "reason": "VIP"}
    assert api.put(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="k-crash").status_code == 200
    crashed = IdempotencyKey.objects.get(key="k-crash")
    assert crashed.expires_at > timezone.now() + timedelta(hours=23)  # a finished request keeps 24 h
    now = timezone.now()
    IdempotencyKey.objects.filter(pk=crashed.pk).update(
        response_status=None, response_body=None, expires_at=now + lease_duration()
    )
    assert_problem(api.put(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="k-crash"), 409, "request_in_progress")
    IdempotencyKey.objects.filter(pk=crashed.pk).update(expires_at=now - timedelta(seconds=1))
    again = api.put(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="k-crash")
    assert (again.status_code, "Idempotent-Replayed" in again) == (200, False)
    assert IdempotencyKey.objects.get(key="k-crash").response_status == 200
