"""The benefit catalog, mappings and event codes as configuration (validated, audited, versioned)."""

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEntry
from benefits.grants import grant_benefit
from benefits.models import Benefit, EventCode, MemberBenefit
from benefits.services import assign_tier_benefit, create_from_template, delete_benefit, save_benefit, save_event_code
from config.errors import Invalid
from tenancy.services import DuplicateCode, InUse
from tests.factories import MemberFactory, hotel_ladder

pytestmark = pytest.mark.django_db


def test_benefit_validation(tenant):
    with pytest.raises(ValidationError) as excinfo:
        save_benefit(tenant=tenant, benefit=Benefit(code="t", name="T", lifetime="temporary"), actor="t")
    assert list(excinfo.value.message_dict) == ["duration_days"]
    with pytest.raises(ValidationError) as excinfo:
        save_benefit(tenant=tenant, benefit=Benefit(code="c", name="C", lifetime="conditional", criteria=[]), actor="t")
    assert list(excinfo.value.message_dict) == ["criteria"]
    assert Benefit.objects.count() == 0


def test_bundle_and_template(tenant):
    late = save_benefit(tenant=tenant, benefit=Benefit(code="late", name="Late checkout"), actor="t")
    drink = save_benefit(tenant=tenant, benefit=Benefit(code="drink", name="Welcome drink"), actor="t")
    bundle = save_benefit(
        tenant=tenant, benefit=Benefit(code="pack", name="Pack", is_template=True), actor="t", components=[late, drink]
    )
    with pytest.raises(Invalid):
        save_benefit(tenant=tenant, benefit=bundle, actor="t", components=[bundle])
    copy = create_from_template(tenant=tenant, template=bundle, code="pack-2027", name="", actor="t")
    assert (copy.is_template, copy.name, sorted(copy.components.values_list("code", flat=True))) == (
        False,
        "Pack",
        ["drink", "late"],
    )
    with pytest.raises(Invalid):
        create_from_template(tenant=tenant, template=copy, code="x", name="x", actor="t")
    entry = AuditEntry.objects.filter(action="benefit.created", target_id=str(copy.pk)).get()
    assert sorted(entry.after["components"]) == sorted([late.pk, drink.pk])


def test_delete_is_refused_while_held(tenant):
    _, tiers, _ = hotel_ladder(tenant)
    late = save_benefit(tenant=tenant, benefit=Benefit(code="late", name="Late checkout"), actor="t")
    assign_tier_benefit(tenant=tenant, tier=tiers["gold"], benefit=late, actor="t")
    MemberBenefit.objects.create(
        tenant=tenant,
        member=MemberFactory(tenant=tenant),
        benefit=late,
        source="tier",
        granted_at="2026-01-01T00:00:00Z",
    )
    with pytest.raises(InUse, match="granted 1 time; mapped to 1 tier"):
        delete_benefit(tenant=tenant, benefit=late, actor="t")


def test_event_codes_are_case_insensitive_and_unique(tenant):
    _, tiers, _ = hotel_ladder(tenant)
    code = save_event_code(
        tenant=tenant,
        event_code=EventCode(code=" vipInvite2027 ", action="promote_tier", tier=tiers["platinum"]),
        actor="t",
    )
    assert code.code == "VIPINVITE2027"
    with pytest.raises(DuplicateCode):
        save_event_code(
            tenant=tenant, event_code=EventCode(code="VIPinvite2027", action="award_points", points=5), actor="t"
        )
    with pytest.raises(ValidationError) as excinfo:
        save_event_code(
            tenant=tenant, event_code=EventCode(code="X", action="award_points", tier=tiers["gold"]), actor="t"
        )
    assert set(excinfo.value.message_dict) == {"points", "tier"}


def test_only_limited_benefits_count_their_grants_and_a_new_limit_counts_those_made(tenant):
    """Unlimited benefits are not counted (no hot row every grant serialises on); setting a limit later
    starts the count from the grants already made, so the limit still means "the first N"."""
    drink = save_benefit(tenant=tenant, benefit=Benefit(code="drink", name="Welcome drink"), actor="t")
    now = timezone.now()
    with transaction.atomic():
        for external_id in ("ann", "ben"):
            member = MemberFactory(tenant=tenant, external_id=external_id)
            grant_benefit(
                tenant=tenant, member=member, benefit=drink, source="manual", source_ref="", actor="t", now=now
            )
    drink.refresh_from_db()
    assert (drink.granted_count, MemberBenefit.objects.filter(benefit=drink).count()) == (0, 2)
    drink.total_quantity = 3
    save_benefit(tenant=tenant, benefit=drink, actor="t")
    drink.refresh_from_db()
    assert drink.granted_count == 2
