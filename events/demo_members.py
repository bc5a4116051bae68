"""Demo members (``manage.py seed_demo``): a few hundred registrations through the real service, a
share of them matched or invited to higher tiers the way a program's launch would look."""

import random
from typing import Any

from events.registration import register_member
from members.models import Member
from members.services import Registration
from tenancy.models import Tenant
from tiers.assignments import change_member_tier
from tiers.models import Tier

FIRST = ["Ann", "Ben", "Chai", "Dao", "Emi", "Farid", "Grace", "Hiro", "Isla", "Jun", "Kanya", "Leo", "Mai", "Niran"]
LAST = ["Lee", "Tan", "Suzuki", "Wong", "Srisai", "Smith", "Garcia", "Kim", "Nguyen", "Patel", "Chen", "Sato"]
COUNTRIES = ["TH", "TH", "TH", "SG", "JP", "US", "GB", "AU"]


def seed_members(
    tenant: Tenant, tiers: dict[str, dict[str, Tier]], count: int = 300, actor: Any = "system:seed_demo"
) -> int:
    """Register ``count`` members (idempotent: existing external ids are skipped). Returns how many
    were created."""
    rng = random.Random(42)  # noqa: S311 - demo data, reproducible
    existing = set(Member.objects.filter(tenant=tenant).values_list("external_id", flat=True))
    created = 0
    for i in range(1, count + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        country = rng.choice(COUNTRIES)
        roll = rng.random()
        external_id = f"demo-{i:04d}"
        if external_id in existing:
            continue
        member, _ = register_member(
            tenant=tenant,
            registration=Registration(
                external_id=external_id,
                name=f"{first} {last}",
                email=f"{first.lower()}.{last.lower()}.{i}@example.com",
                mobile=f"+6681{i:07d}",
                attributes={"country": country, "newsletter": roll < 0.6},
            ),
            actor=actor,
        )
        created += 1
        hotel = tiers["hotel"]
        if roll < 0.03:
            change_member_tier(
                tenant=tenant, member=member, tier=hotel["platinum"], reason="Status match (competitor)", actor=actor
            )
        elif roll < 0.09:
            change_member_tier(
                tenant=tenant, member=member, tier=hotel["gold"], reason="Status match (competitor)", actor=actor
            )
        elif roll < 0.2:
            change_member_tier(
                tenant=tenant, member=member, tier=hotel["silver"], reason="Launch promotion", actor=actor
            )
        if roll > 0.95:
            change_member_tier(
                tenant=tenant,
                member=member,
                tier=tiers["partner-card"]["infinite"],
                reason="Private banking client",
                actor=actor,
                source="invitation",
            )
    return created
