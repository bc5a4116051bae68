"""The member page's "Roll back…" on a tier change: the link where a change can be undone, a page that
shows now against after, a required reason, the rollback through the service; another tenant's member or
another member's change is "not found"."""

import re
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from audit.models import AuditEntry
from tests.factories import MemberFactory, TenantMembershipFactory, UserFactory
from tiers.models import MemberTierAssignment, MemberTierChange

pytestmark = pytest.mark.django_db


def text(response: Any) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


@pytest.fixture
def staff_client(client, tenant):
    user = UserFactory(username="anna")
    user.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["tiers", "members"]))
    TenantMembershipFactory(user=user, tenant=tenant)
    client.force_login(user)
    return client


def rollback_url(change) -> str:
    return reverse("admin:members_member_rollback_tier", args=[change.member_id, change.pk])


def test_rolling_back_a_change_from_the_member_page(api, ann, staff_client):
    body = {"tier_type": "hotel", "tier": "gold", "reason": "goodwill"}
    assert api.put("/api/v1/member/ann/tier", body, format="json").status_code == 200
    promotion = MemberTierChange.objects.filter(member=ann).first()
    member_page = staff_client.get(reverse("admin:members_member_change", args=[ann.pk])).content.decode()
    assert member_page.count('class="rollback-tier-link"') == 2  # the promotion and the enrolment
    assert f'href="{rollback_url(promotion)}"' in member_page

    page = text(staff_client.get(rollback_url(promotion)))
    assert "moved the member in Hotel status from Member to Gold: “goodwill”" in page
    assert "Tier Gold Member" in page  # now, after the rollback
    refused = staff_client.post(rollback_url(promotion), {"reason": "  "})
    assert refused.status_code == 200
    assert refused.context["form"].errors == {"reason": ["This field is required."]}
    assert not MemberTierChange.objects.filter(source="rollback").exists()

    done = staff_client.post(rollback_url(promotion), {"reason": "wrong member"})
    assert done.status_code == 302
    assert MemberTierAssignment.objects.get(member=ann).tier.code == "member"
    entry = AuditEntry.objects.get(action="tier.rolled_back")
    assert (entry.actor, entry.reason, entry.target_id) == ("user:anna", "wrong member", str(promotion.pk))
    member_page = text(staff_client.get(reverse("admin:members_member_change", args=[ann.pk])))
    assert "rolled back" in member_page
    again = staff_client.post(rollback_url(promotion), {"reason": "again"})
    assert "This tier change was already rolled back." in text(again)


def test_another_tenants_member_or_another_members_change_is_not_found(api, ann, staff_client, other_tenant):
    theirs = MemberFactory(tenant=other_tenant, external_id="zed")
    change = MemberTierChange.objects.get(member=ann)
    other_url = reverse("admin:members_member_rollback_tier", args=[theirs.pk, change.pk])
    assert staff_client.get(other_url).status_code == 404
    bob = MemberFactory(tenant=ann.tenant, external_id="bob")
    assert staff_client.get(reverse("admin:members_member_rollback_tier", args=[bob.pk, change.pk])).status_code == 404


def test_reversing_a_point_transaction_from_its_page(api, ann, tenant, client, other_tenant):
    from points.models import PointTransaction
    from tests.factories import PointConversionRuleFactory
    from tests.helpers import stay

    PointConversionRuleFactory(tenant=tenant, code="base")
    assert api.post("/api/v1/member/ann/event", stay("s-1"), format="json").status_code == 201
    earn = PointTransaction.objects.get(kind="earn")
    user = UserFactory(username="pat")
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="points"))
    TenantMembershipFactory(user=user, tenant=tenant)
    client.force_login(user)
    staff_page = client.get(reverse("admin:points_pointtransaction_change", args=[earn.pk])).content.decode()
    assert 'class="reverse-link">Reverse…</a>' in staff_page
    url = reverse("admin:points_pointtransaction_reverse", args=[earn.pk])
    page = text(client.get(url))
    assert "This earn of 1,000 points for event s-1 has 1,000 points left to reverse." in page
    assert client.post(url, {"reason": ""}).context["form"].errors == {"reason": ["This field is required."]}
    done = client.post(url, {"reason": "fraudulent stay"})
    reversal = PointTransaction.objects.get(kind="reversal")
    assert done["Location"] == reverse("admin:points_pointtransaction_change", args=[reversal.pk])
    assert (reversal.points, reversal.reversal_of_id) == (-1000, earn.pk)
    again = text(client.post(url, {"reason": "again"}))
    assert "This transaction is already fully reversed." in again
    assert PointTransaction.objects.filter(kind="reversal").count() == 1
    assert (
        'class="reverse-link"'
        not in client.get(reverse("admin:points_pointtransaction_change", args=[earn.pk])).content.decode()
    )
    theirs = PointTransaction.objects.create(
        tenant=other_tenant,
        member=MemberFactory(tenant=other_tenant, external_id="zed"),
        kind="adjustment",
        points=5,
        occurred_at=earn.occurred_at,
    )
    assert client.get(reverse("admin:points_pointtransaction_reverse", args=[theirs.pk])).status_code == 404


def test_the_member_page_lists_the_rollbacks_in_words(api, ann, staff_client):
    from benefits.models import MemberBenefit
    from tests.factories import BenefitFactory, TierBenefitMappingFactory
    from tiers.models import Tier

    gold = Tier.objects.get(code="gold")
    TierBenefitMappingFactory(tier=gold, benefit=BenefitFactory(tenant=ann.tenant, code="lounge", name="Lounge"))
    body = {"tier_type": "hotel", "tier": "gold", "reason": "goodwill"}
    assert api.put("/api/v1/member/ann/tier", body, format="json").status_code == 200
    grant = MemberBenefit.objects.get(member=ann)
    rollback = {"grant": grant.pk, "reason": "card shared"}
    assert api.post("/api/v1/member/ann/rollback/benefit", rollback, format="json").status_code == 200
    undo = {"tier_type": "hotel", "reason": "wrong member"}
    assert api.post("/api/v1/member/ann/rollback/tier", undo, format="json").status_code == 200
    page = text(staff_client.get(reverse("admin:members_member_change", args=[ann.pk])))
    assert "Rollbacks (newest first): When (Asia/Bangkok) What Of Reason By" in page
    assert "tier change undone Hotel status: Gold → Member wrong member service:svc-test" in page
    assert "benefit revoked Lounge card shared service:svc-test" in page
