import factory
from django.contrib.auth import get_user_model

from tenancy.models import Tenant, TenantMembership


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"tenant-{n}")
    name = factory.LazyAttribute(lambda o: f"{o.slug.title()} Loyalty")
    timezone = "Asia/Bangkok"
    currency = "USD"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"staff{n}")
    is_staff = True
    password = factory.django.Password("correct horse battery staple")


class TenantMembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TenantMembership

    user = factory.SubFactory(UserFactory)
    tenant = factory.SubFactory(TenantFactory)


class TierTypeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "tiers.TierType"

    tenant = factory.SubFactory(TenantFactory)
    code = factory.Sequence(lambda n: f"type-{n}")
    name = factory.LazyAttribute(lambda o: o.code.title())
    mode = "hybrid"
    qualification = "calendar_year"
    validity = "end_of_next_period"
    grace_days = 90


class TierFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "tiers.Tier"

    tier_type = factory.SubFactory(TierTypeFactory)
    tenant = factory.SelfAttribute("tier_type.tenant")
    code = factory.Sequence(lambda n: f"tier-{n}")
    name = factory.LazyAttribute(lambda o: o.code.title())
    rank = factory.Sequence(lambda n: n + 1)


class PromotionRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "tiers.PromotionRule"

    target_tier = factory.SubFactory(TierFactory)
    tier_type = factory.SelfAttribute("target_tier.tier_type")
    tenant = factory.SelfAttribute("tier_type.tenant")
    code = factory.Sequence(lambda n: f"rule-{n}")
    direction = "promotion"
    combinator = "any"
    status = "active"
    criteria = factory.LazyFunction(
        lambda: [{"metric": "quantity:nights", "operator": "gte", "value": 25, "window_days": None}]
    )


class MemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "members.Member"

    tenant = factory.SubFactory(TenantFactory)
    external_id = factory.Sequence(lambda n: f"u-{n}")
    name = factory.Sequence(lambda n: f"Member {n}")


def hotel_ladder(tenant, *, code: str = "hotel", active: bool = True):
    """A tier type with Member (default) < Silver < Gold < Platinum, and a Gold promotion rule.

    Returns (tier_type, {code: tier}, rule). Built with factories (no services: no audit rows).
    """
    tier_type = TierTypeFactory(tenant=tenant, code=code, name=f"{code.title()} status", active=active)
    tiers = {
        "member": TierFactory(tier_type=tier_type, code="member", name="Member", rank=1, is_default=True),
        "silver": TierFactory(tier_type=tier_type, code="silver", name="Silver", rank=2),
        "gold": TierFactory(tier_type=tier_type, code="gold", name="Gold", rank=3, point_multiplier="1.50"),
        "platinum": TierFactory(tier_type=tier_type, code="platinum", name="Platinum", rank=4, climbable=False),
    }
    rule = PromotionRuleFactory(
        tier_type=tier_type,
        target_tier=tiers["gold"],
        code=f"{code}-gold-by-nights",
        criteria=[
            {"metric": "quantity:nights", "operator": "gte", "value": 25, "window_days": None},
            {"metric": "quantity:stays", "operator": "gte", "value": 15, "window_days": None},
        ],
    )
    return tier_type, tiers, rule
