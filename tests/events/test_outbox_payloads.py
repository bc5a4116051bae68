"""Every service that emits, and exactly what it emits: each outbox message's type, member and data.

One row per service call; the messages it wrote are compared whole (in sequence order), with ids and
times taken from the rows the call stored.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import F
from django.utils import timezone

from benefits.grants import LOST_REASON
from benefits.member_grants import expire_grants, revoke_member_grant, use_grant
from benefits.models import Benefit, EventCode, EventCodeRedemption, MemberBenefit, TierBenefitMapping
from events.erasure import erase_member
from events.event_codes import redeem_event_code
from events.ingestion import ingest_event
from events.notifications import request_notification
from events.publish import publish_event
from events.registration import register_member
from events.rollback import rollback_tier_change
from members.models import Member, MemberEvent
from members.services import Registration
from outbox.models import OutboxMessage
from points.models import PointConversionRule, PointPolicy, PointTransaction
from points.services import rollback_point_transaction
from reconciliation.runs import create_run, process_run
from tiers.assignments import change_member_tier
from tiers.models import Tier

pytestmark = pytest.mark.django_db

ACTOR = "user:ops"
NOW = timezone.now().replace(microsecond=0)


@dataclass
class Program:
    tenant: Any
    tiers: dict[str, Tier]
    ann: Member
    before: set = field(default_factory=set)

    def mark(self) -> None:
        """What a row prepares is not what it tests: messages up to here are not compared."""
        self.before = set(OutboxMessage.objects.values_list("pk", flat=True))


@pytest.fixture
def program(tenant, ladder) -> Program:
    """Acme's ladder; 10 points per 1.00; 100 welcome points; a Lounge benefit (2 uses) for Gold; a code
    worth 500 points; ``ann`` registered (her registration's messages are a row of their own)."""
    _, tiers, _ = ladder
    PointConversionRule.objects.create(
        tenant=tenant, code="base", base="per_amount", unit_amount=Decimal("1.00"), points_per_unit=10
    )
    PointPolicy.objects.create(tenant=tenant, welcome_points=100)
    lounge = Benefit.objects.create(tenant=tenant, code="lounge", name="Lounge", usage_limit=2)
    TierBenefitMapping.objects.create(tenant=tenant, tier=tiers["gold"], benefit=lounge)
    EventCode.objects.create(tenant=tenant, code="BONUS", action="award_points", points=500)
    tenant.bump_config_version()
    member, _ = register_member(tenant=tenant, registration=Registration(external_id="ann"), actor=ACTOR)
    return Program(tenant, tiers, member)


def stay(event_id: str, *, nights: int = 1, amount: str = "100.00", **extra: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "source": "pos",
        "type": "transaction",
        "occurred_at": NOW - timedelta(hours=1),
        "amount": Decimal(amount),
        "quantities": {"nights": nights},
        **extra,
    }


def post(p: Program, data: dict[str, Any]) -> MemberEvent:
    return ingest_event(tenant=p.tenant, member_id="ann", data=data, actor=ACTOR)[0]


def earn_view(tx: PointTransaction, *, rule: str | None = "base", multiplier: str = "1") -> dict[str, Any]:
    return {
        "id": tx.pk,
        "kind": tx.kind,
        "rule": rule,
        "base": int(tx.base),
        "multipliers": {"tier": multiplier},
        "modifiers": [],
        "uncapped": tx.uncapped,
        "points": tx.points,
        "capped_by": None,
    }


def iso(value: Any) -> Any:
    """A value as the message's JSON holds it."""
    return DjangoJSONEncoder().default(value) if value is not None else None


# --- the rows -------------------------------------------------------------------------------------
def register(p: Program) -> Callable[[], list]:
    member, _ = register_member(tenant=p.tenant, registration=Registration(external_id="bob"), actor=ACTOR)
    welcome = PointTransaction.objects.get(member=member)

    def expected() -> list:
        return [
            (
                "member.created",
                "bob",
                {"external_id": "bob", "status": "active", "registered_at": iso(member.registered_at)},
            ),
            ("tier.changed", "bob", tier_changed(None, "member", reason="default tier at enrollment")),
            (
                "points.applied",
                "bob",
                {"kind": "welcome", "total": 100, "transactions": [earn_view(welcome, rule=None)]},
            ),
        ]

    return expected


def tier_changed(old: str | None, new: str, *, reason: str, source: str = "auto", rule: str | None = None, **dates):
    ranks = {"member": 1, "silver": 2, "gold": 3, "platinum": 4}
    return {
        "tier_type": "hotel",
        "from": old,
        "to": new,
        "from_rank": ranks.get(old),
        "to_rank": ranks[new],
        "source": source,
        "reason": reason,
        "rule": rule,
        "valid_until": dates.get("valid_until"),
        "lock_until": dates.get("lock_until"),
        "expires_at": dates.get("expires_at"),
    }


def earn(p: Program) -> Callable[[], list]:
    event = post(p, stay("e1"))
    (tx,) = PointTransaction.objects.filter(event=event)
    return lambda: [
        ("points.applied", "ann", {"event_id": "e1", "source": "pos", "total": 1000, "transactions": [earn_view(tx)]})
    ]


def promote(p: Program) -> Callable[[], list]:
    event = post(p, stay("e1", nights=30))
    (tx,) = PointTransaction.objects.filter(event=event)
    grant = MemberBenefit.objects.get(member=p.ann)
    gold = p.ann.tier_assignments.get()

    def expected() -> list:
        return [
            (
                "points.applied",
                "ann",
                {"event_id": "e1", "source": "pos", "total": 1000, "transactions": [earn_view(tx)]},
            ),
            (
                "tier.changed",
                "ann",
                tier_changed(
                    "member",
                    "gold",
                    reason="qualified",
                    rule="hotel-gold-by-nights",
                    valid_until=local_iso(p, gold.valid_until),
                ),
            ),
            (
                "benefit.applied",
                "ann",
                {"grant": grant.pk, "benefit": "lounge", "source": "tier", "source_ref": "gold", "expires_at": None},
            ),
        ]

    return expected


def local_iso(p: Program, value: Any) -> str:
    """A tier change's dates are written in the tenant's time zone."""
    return value.astimezone(ZoneInfo(p.tenant.timezone)).isoformat()


def refund(p: Program) -> Callable[[], list]:
    post(p, stay("e1"))
    p.mark()
    event = post(
        p,
        {
            "event_id": "r1",
            "source": "pos",
            "type": "refund",
            "occurred_at": NOW,
            "refund_of": "e1",
            "amount": Decimal("25.00"),
        },
    )
    (tx,) = PointTransaction.objects.filter(event=event)
    view = earn_view(tx, rule=None)
    return lambda: [
        ("points.reverted", "ann", {"event_id": "r1", "refund_of": "e1", "total": -250, "transactions": [view]}),
    ]


def rollback(p: Program) -> Callable[[], list]:
    earned = PointTransaction.objects.get(member=p.ann)  # the welcome points
    reversal = rollback_point_transaction(tenant=p.tenant, tx=earned, actor=ACTOR, reason="fraud check")
    view = earn_view(reversal, rule=None)
    return lambda: [
        (
            "points.reverted",
            "ann",
            {"rollback_of": earned.pk, "total": -100, "transactions": [view], "reason": "fraud check"},
        )
    ]


def redeem(p: Program) -> Callable[[], list]:
    redeem_event_code(tenant=p.tenant, member=p.ann, code="BONUS", actor=ACTOR)
    redemption = EventCodeRedemption.objects.get()
    tx = PointTransaction.objects.filter(member=p.ann).latest("pk")
    return lambda: [
        (
            "points.applied",
            "ann",
            {"kind": "code", "code": "BONUS", "total": 500, "transactions": [earn_view(tx, rule=None)]},
        ),
        (
            "event_code.redeemed",
            "ann",
            {"redemption": redemption.pk, "code": "BONUS", "action": "award_points", "result": redemption.result},
        ),
    ]


def manual_change(p: Program) -> Callable[[], list]:
    change_member_tier(tenant=p.tenant, member=p.ann, tier=p.tiers["silver"], reason="goodwill", actor=ACTOR)
    silver = p.ann.tier_assignments.get()
    return lambda: [
        (
            "tier.changed",
            "ann",
            tier_changed(
                "member", "silver", reason="goodwill", source="manual", valid_until=local_iso(p, silver.valid_until)
            ),
        )
    ]


def gold_grant(p: Program) -> MemberBenefit:
    change_member_tier(tenant=p.tenant, member=p.ann, tier=p.tiers["gold"], reason="goodwill", actor=ACTOR)
    return MemberBenefit.objects.get(member=p.ann)


def use(p: Program) -> Callable[[], list]:
    grant = gold_grant(p)
    p.mark()
    use_grant(tenant=p.tenant, grant=grant, actor=ACTOR, now=NOW)
    return lambda: [
        ("benefit.used", "ann", {"grant": grant.pk, "benefit": "lounge", "uses": 1, "remaining": 1, "status": "active"})
    ]


def revoke(p: Program) -> Callable[[], list]:
    grant = gold_grant(p)
    p.mark()
    revoke_member_grant(tenant=p.tenant, grant=grant, actor=ACTOR, reason="abuse")
    return lambda: [
        ("benefit.revoked", "ann", {"grant": grant.pk, "benefit": "lounge", "source": "tier", "reason": "abuse"})
    ]


def expire(p: Program) -> Callable[[], list]:
    grant = gold_grant(p)
    ends = NOW - timedelta(minutes=1)
    MemberBenefit.objects.filter(pk=grant.pk).update(expires_at=ends)
    p.mark()
    assert expire_grants(now=NOW) == 1
    return lambda: [
        (
            "benefit.expired",
            "ann",
            {
                "grant": grant.pk,
                "benefit": "lounge",
                "source": "tier",
                "source_ref": "gold",
                "expires_at": iso(ends),
                "uses": 0,
            },
        )
    ]


def tier_rollback(p: Program) -> Callable[[], list]:
    grant = gold_grant(p)
    p.mark()
    hotel = p.tiers["gold"].tier_type
    rollback_tier_change(tenant=p.tenant, member=p.ann, tier_type=hotel, reason="wrong member", actor=ACTOR)
    assert p.ann.tier_assignments.get().valid_until is None  # the default tier: held without end
    return lambda: [
        (
            "tier.changed",
            "ann",
            tier_changed("gold", "member", reason="wrong member", source="rollback"),
        ),
        ("benefit.revoked", "ann", {"grant": grant.pk, "benefit": "lounge", "source": "tier", "reason": LOST_REASON}),
    ]


def reconciliation_repair(p: Program) -> Callable[[], list]:
    event = post(p, stay("e1"))
    PointTransaction.objects.filter(event=event).update(points=F("points") + 7)
    p.mark()
    run = create_run(tenant=p.tenant, fix=True, checks=["points", "tiers"], member_ids=["ann"], actor=ACTOR)
    assert process_run(run.pk).fixed == {"points": 1, "tiers": 0}
    adjustment = PointTransaction.objects.get(event=event, kind="adjustment")
    return lambda: [
        (
            "points.adjusted",
            "ann",
            {"total": -7, "transactions": [{"id": adjustment.pk, "event_id": "e1", "points": -7}]},
        )
    ]


def notify(p: Program) -> Callable[[], list]:
    Member.objects.filter(pk=p.ann.pk).update(email="ann@example.com")
    p.ann.refresh_from_db()
    p.mark()
    notification = request_notification(
        tenant=p.tenant, member=p.ann, channel="email", template="welcome", data={"name": "Ann"}, actor=ACTOR
    )
    return lambda: [
        (
            "notification.requested",
            "ann",
            {
                "notification_id": str(notification.pk),
                "channel": "email",
                "template": "welcome",
                "status": "skipped",
            },  # no Notification service in tests,
        )
    ]


def publish(p: Program) -> Callable[[], list]:
    publish_event(tenant=p.tenant, type="tier.changed", member_id="ann", data={"note": "re-announce"}, actor=ACTOR)
    return lambda: [("tier.changed", "ann", {"note": "re-announce"})]


def erase(p: Program) -> Callable[[], list]:
    erase_member(tenant=p.tenant, member=p.ann, reason="member's request", actor=ACTOR)
    return lambda: [("member.erased", "ann", {"external_id": "ann"})]


ROWS: dict[str, Callable[[Program], Callable[[], list]]] = {
    "register_member": register,
    "ingest_event (earning)": earn,
    "ingest_event (promoting)": promote,
    "ingest_event (refund)": refund,
    "rollback_point_transaction": rollback,
    "redeem_event_code": redeem,
    "change_member_tier": manual_change,
    "use_grant": use,
    "revoke_member_grant": revoke,
    "rollback_tier_change": tier_rollback,
    "reconciliation repair (points)": reconciliation_repair,
    "expire_grants": expire,
    "request_notification": notify,
    "publish_event": publish,
    "erase_member": erase,
}


@pytest.mark.parametrize("service", list(ROWS))
def test_each_message_a_service_emits(program, service):
    program.mark()
    expected = ROWS[service](program)
    written = [
        (m.type, m.member_id, m.data)
        for m in OutboxMessage.objects.exclude(pk__in=program.before).order_by("member_id", "sequence")
    ]
    assert written == expected()
