"""DOMAIN §9: with no configuration change, the replay kernel's baseline equals the live state member by
member — tiers in every tier type and the points of every event — over a generated program whose events
arrived out of order, with caps binding, partial and full refunds, manual changes and invitations."""

from collections import defaultdict

import pytest
from django.db.models import Sum

from points.models import PointTransaction
from simulation.config import program
from simulation.kernel import replay
from simulation.loader import chunks, histories
from tests.factories import TenantFactory
from tests.simulation.program import build_program, populate
from tiers.models import MemberTierAssignment, MemberTierChange

pytestmark = pytest.mark.django_db


def test_baseline_replay_equals_live_state_for_every_member():
    tenant = TenantFactory(slug="sim-live", timezone="Asia/Bangkok")
    populate(tenant, build_program(tenant), members=500, rollbacks=True)
    live_tiers: dict[int, dict[int, int]] = defaultdict(dict)
    for member_id, tier_type_id, tier_id in MemberTierAssignment.objects.filter(tenant=tenant).values_list(
        "member_id", "tier_type_id", "tier_id"
    ):
        live_tiers[member_id][tier_type_id] = tier_id
    live_points: dict[int, dict[int, int]] = defaultdict(dict)
    for member_id, event_id, points in (
        PointTransaction.objects.filter(tenant=tenant, event__isnull=False)
        .values_list("member_id", "event_id")
        .annotate(points=Sum("points"))
    ):
        if points:
            live_points[member_id][event_id] = points
    config = program(tenant)
    compared = events = capped = refunds = 0
    for first, last, _ in chunks(tenant, 128):
        for history in histories(tenant, first, last):
            outcome, _ = replay(history, config)
            assert outcome.tiers == live_tiers[history.pk], history.external_id
            assert {k: v for k, v in outcome.event_points.items() if v} == live_points[history.pk], history.external_id
            compared += 1
            events += outcome.events
            refunds += sum(1 for e in history.events if e.refund_of is not None)
    capped = PointTransaction.objects.filter(tenant=tenant).exclude(capped_by="").count()
    adjusted = PointTransaction.objects.filter(tenant=tenant, kind="adjustment").count()
    promoted = MemberTierAssignment.objects.filter(tenant=tenant, tier__rank__gt=1).count()
    assert compared == 500
    # the generated program exercised what it claims to
    assert events > 1500
    assert refunds > 100
    assert capped > 20
    assert adjusted > 5
    assert promoted > 50
    assert MemberTierChange.objects.filter(tenant=tenant, source="rollback").count() > 20
