"""The demo program's benefits (``manage.py seed_demo``): what a hotel ladder gives — late checkout from
Gold up, lounge access from Platinum up, a welcome gift for the first 100 members, a bundle of two
vouchers from Silver up (kept when the tier is lost), and a single-use invitation code to the top
tier. Built through the services the admin and API use (validated, audited, history-tracked)."""

from typing import Any

from benefits.models import Benefit, EventCode, TierBenefitMapping
from benefits.services import assign_tier_benefit, save_benefit, save_event_code
from tenancy.models import Tenant
from tiers.models import Tier

BENEFITS: list[dict[str, Any]] = [
    {
        "code": "late-checkout",
        "name": "Late checkout (until 2 pm)",
        "type": Benefit.Type.CUSTOM,
        "value": {"hours": 2},
    },
    {
        "code": "lounge-access",
        "name": "Executive lounge access",
        "type": Benefit.Type.CUSTOM,
        "value": {"lounge": "executive", "guests": 1},
    },
    {
        "code": "welcome-gift",
        "name": "Welcome gift (first 100 members)",
        "type": Benefit.Type.VOUCHER,
        "value": {"item": "welcome amenity"},
        "lifetime": Benefit.Lifetime.TEMPORARY,
        "duration_days": 30,
        "usage_limit": 1,
        "total_quantity": 100,
    },
    {
        "code": "dining-voucher",
        "name": "Dining voucher (USD 25)",
        "type": Benefit.Type.VOUCHER,
        "value": {"amount": "25.00", "currency": "USD"},
        "usage_limit": 1,
        "retain_on_loss": True,
    },
    {
        "code": "spa-voucher",
        "name": "Spa voucher (USD 40)",
        "type": Benefit.Type.VOUCHER,
        "value": {"amount": "40.00", "currency": "USD"},
        "usage_limit": 1,
        "retain_on_loss": True,
    },
    {
        "code": "voucher-bundle",
        "name": "Silver voucher bundle",
        "type": Benefit.Type.VOUCHER,
        "value": {},
        "retain_on_loss": True,
        "components": ["dining-voucher", "spa-voucher"],
    },
]
# benefit code → hotel tier it is mapped to (inheritable: that tier and every higher one)
HOTEL_MAPPINGS = {
    "welcome-gift": "member",
    "voucher-bundle": "silver",
    "late-checkout": "gold",
    "lounge-access": "platinum",
}
INVITATION_CODE = "VIPINVITE2027"


def seed_benefits(
    tenant: Tenant, tiers: dict[str, dict[str, Tier]], actor: Any = "system:seed_demo"
) -> dict[str, Benefit]:
    """Idempotent: what exists (by code, or the mapping by tier and benefit) is kept as it is. Run it
    before the members are registered, so that they get their tiers' benefits."""
    saved: dict[str, Benefit] = {}
    for row in BENEFITS:
        fields = {k: v for k, v in row.items() if k != "components"}
        existing = Benefit.objects.filter(tenant=tenant, code=fields["code"]).first()
        saved[fields["code"]] = existing or save_benefit(
            tenant=tenant,
            benefit=Benefit(**fields),
            actor=actor,
            components=[saved[c] for c in row.get("components", [])],
        )
    hotel = tiers["hotel"]
    for code, tier_code in HOTEL_MAPPINGS.items():
        if not TierBenefitMapping.objects.filter(tier=hotel[tier_code], benefit=saved[code]).exists():
            assign_tier_benefit(
                tenant=tenant, tier=hotel[tier_code], benefit=saved[code], actor=actor, inheritable=True
            )
    if not EventCode.objects.filter(tenant=tenant, code=INVITATION_CODE).exists():
        top = max(hotel.values(), key=lambda tier: tier.rank)
        save_event_code(
            tenant=tenant,
            actor=actor,
            event_code=EventCode(
                code=INVITATION_CODE,
                name=f"VIP invitation to {top.name}",
                action=EventCode.Action.PROMOTE_TIER,
                tier=top,
                max_redemptions=1,
                per_member_limit=1,
            ),
        )
    return saved
