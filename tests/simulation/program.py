"""A generated loyalty program for simulation tests, filled through the live pipeline: two ladders (a
calendar-year hotel ladder and a rolling, dynamic dining ladder with a demotion rule), capped point
rules with a tier multiplier and a weekend modifier, and members whose events arrive out of order,
with partial and full refunds, manual tier changes and invitations between them."""

import contextlib
import random
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from config.errors import Conflict, NotFound
from events.ingestion import ingest_event
from events.registration import register_member
from events.rollback import rollback_tier_change
from members.api.serializers import EventInputSerializer
from members.models import Member
from members.services import Registration
from points.models import PointConversionRule, PointModifier, PointPolicy
from tests.factories import PromotionRuleFactory, TierFactory, TierTypeFactory, hotel_ladder
from tiers.assignments import change_member_tier
from tiers.models import Tier


def build_program(tenant):
    hotel, tiers, _gold = hotel_ladder(tenant)
    PromotionRuleFactory(
        tier_type=hotel,
        target_tier=tiers["silver"],
        code="hotel-silver-by-spend",
        criteria=[{"metric": "spend", "operator": "gte", "value": 3000, "window_days": None}],
    )
    dining = TierTypeFactory(
        tenant=tenant,
        code="dining",
        name="Dining",
        mode="dynamic",
        qualification="rolling",
        window_days=90,
        validity="while_qualified",
        grace_days=7,
    )
    d_member = TierFactory(tier_type=dining, code="diner", name="Diner", rank=1, is_default=True)
    d_gourmet = TierFactory(tier_type=dining, code="gourmet", name="Gourmet", rank=2, point_multiplier="2.00")
    PromotionRuleFactory(
        tier_type=dining,
        target_tier=d_gourmet,
        code="dining-gourmet",
        criteria=[{"metric": "transactions", "operator": "gte", "value": 4, "window_days": None}],
    )
    PromotionRuleFactory(
        tier_type=dining,
        target_tier=d_member,
        code="dining-idle",
        direction="demotion",
        criteria=[{"metric": "days_inactive", "operator": "gte", "value": 60, "window_days": None}],
    )
    per_spend = PointConversionRule.objects.create(
        tenant=tenant,
        code="spend",
        base="per_amount",
        unit_amount=Decimal(10),
        points_per_unit=1,
        tier_type=hotel,
        cap_per_day=300,
        event_types=["transaction"],
    )
    PointConversionRule.objects.create(
        tenant=tenant,
        code="dining-visit",
        base="per_event",
        points_per_unit=25,
        group="visit",
        tier_type=dining,
        cap_per_week=60,
        event_types=["transaction"],
    )
    weekend = PointModifier.objects.create(
        tenant=tenant, code="weekend", multiplier=Decimal("1.5"), days_of_week=[5, 6]
    )
    weekend.rules.set([per_spend])
    PointPolicy.objects.create(tenant=tenant, cap_per_week=900, point_value=Decimal("0.01"))
    tenant.bump_config_version()
    return {"hotel": hotel, "dining": dining, "tiers": Tier.objects.filter(tenant=tenant)}


def post_event(tenant, member_id: str, body: dict) -> None:
    serializer = EventInputSerializer(data=body)
    serializer.is_valid(raise_exception=True)
    ingest_event(tenant=tenant, member_id=member_id, data=dict(serializer.validated_data), actor="test")


def populate(tenant, program, *, members: int, seed: int = 7, rollbacks: bool = False) -> list[str]:
    """Register ``members`` members and post their events in one shuffled stream (so arrivals are out
    of order across and within members), with refunds and manual changes mixed in; with ``rollbacks``,
    operators also undo members' latest tier changes now and then (drawn from a second generator, so
    the stream itself is the same either way)."""
    rng = random.Random(seed)
    undo = random.Random(seed + 1)
    now = timezone.now().replace(microsecond=0)
    ids = [f"sim-{n:05d}" for n in range(members)]
    for member_id in ids:
        register_member(tenant=tenant, registration=Registration(external_id=member_id), actor="test")
    stream: list[tuple[str, str, dict]] = []
    for member_id in ids:
        for n in range(rng.choice([0, 1, 2, 4, 6, 9, 12])):
            nights = rng.randint(1, 6)
            stream.append(
                (
                    "event",
                    member_id,
                    {
                        "event_id": f"{member_id}-{n}",
                        "source": "pos",
                        "type": "transaction",
                        "occurred_at": (
                            now - timedelta(days=rng.randint(0, 300), hours=rng.randint(0, 23))
                        ).isoformat(),
                        "amount": f"{rng.randint(20, 900)}.{rng.randint(0, 99):02d}",
                        "quantities": {"nights": nights, "stays": 1},
                        "qualifying": rng.random() > 0.1,
                    },
                )
            )
    rng.shuffle(stream)
    gold = program["tiers"].get(tier_type=program["hotel"], code="gold")
    gourmet = program["tiers"].get(tier_type=program["dining"], code="gourmet")
    out: list[tuple[str, str, dict]] = []
    posted: list[tuple[str, dict]] = []
    for item in stream:
        out.append(item)
        roll = rng.random()
        if roll < 0.12 and posted:
            member_id, original = rng.choice(posted)
            part = Decimal(original["amount"]) * Decimal(rng.choice(["0.25", "0.5", "1"]))
            out.append(("refund", member_id, {**original, "part": str(part.quantize(Decimal("0.01")))}))
        elif roll < 0.15:
            out.append(("manual", item[1], {"tier": rng.choice([gold, gourmet])}))
        if rollbacks and undo.random() < 0.05:
            out.append(("rollback", item[1], {"tier_type": undo.choice([program["hotel"], program["dining"]])}))
        posted.append((item[1], item[2]))
    refunded: dict[tuple[str, str], Decimal] = {}
    refunds = 0
    for kind, member_id, body in out:
        if kind == "event":
            post_event(tenant, member_id, body)
        elif kind == "refund":
            key = (member_id, body["event_id"])
            left = Decimal(body["amount"]) - refunded.get(key, Decimal(0))
            part = min(Decimal(body["part"]), left)
            if part <= 0:
                continue
            refunded[key] = refunded.get(key, Decimal(0)) + part
            refunds += 1
            post_event(
                tenant,
                member_id,
                {
                    "event_id": f"{body['event_id']}-r{refunds}",
                    "source": "pos",
                    "type": "refund",
                    "refund_of": body["event_id"],
                    "occurred_at": (now - timedelta(minutes=1)).isoformat(),
                    "amount": str(part),
                },
            )
        elif kind == "rollback":
            member = Member.objects.get(tenant=tenant, external_id=member_id)
            with contextlib.suppress(Conflict, NotFound):  # nothing to undo: a rollback last, or no change
                rollback_tier_change(
                    tenant=tenant, member=member, tier_type=body["tier_type"], reason="operator", actor="test"
                )
        else:
            member = Member.objects.get(tenant=tenant, external_id=member_id)
            change_member_tier(tenant=tenant, member=member, tier=body["tier"], reason="goodwill", actor="test")
    return ids
