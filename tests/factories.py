from datetime import timedelta
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

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


# --- configuration rows: each one bumps the tenant's config_version, as a service save does, so the
# per-version caches (tier specs, point specs, the benefit catalog) never serve a snapshot without it.
class _ConfigFactory(factory.django.DjangoModelFactory):
    class Meta:
        abstract = True

    @classmethod
    def _after_postgeneration(cls, instance, create, results=None):
        super()._after_postgeneration(instance, create, results)
        if create:
            instance.tenant.bump_config_version()


class BenefitFactory(_ConfigFactory):
    """``components=[...]`` makes a bundle."""

    class Meta:
        model = "benefits.Benefit"
        skip_postgeneration_save = True

    tenant = factory.SubFactory(TenantFactory)
    code = factory.Sequence(lambda n: f"benefit-{n}")
    name = factory.LazyAttribute(lambda o: o.code.title())

    @factory.post_generation
    def components(self, create, extracted, **kwargs):
        if create and extracted:
            self.components.set(extracted)


class TierBenefitMappingFactory(_ConfigFactory):
    class Meta:
        model = "benefits.TierBenefitMapping"

    tier = factory.SubFactory(TierFactory)
    tenant = factory.SelfAttribute("tier.tenant")
    benefit = factory.SubFactory(BenefitFactory, tenant=factory.SelfAttribute("..tenant"))


class CampaignBenefitMappingFactory(_ConfigFactory):
    class Meta:
        model = "benefits.CampaignBenefitMapping"

    tenant = factory.SubFactory(TenantFactory)
    campaign_code = "SPRING"
    benefit = factory.SubFactory(BenefitFactory, tenant=factory.SelfAttribute("..tenant"))


class EventCodeFactory(_ConfigFactory):
    """An ``award_points`` code worth 500 points unless told otherwise."""

    class Meta:
        model = "benefits.EventCode"

    tenant = factory.SubFactory(TenantFactory)
    code = factory.Sequence(lambda n: f"CODE{n}")
    action = "award_points"
    points = factory.LazyAttribute(lambda o: 500 if o.action == "award_points" else None)


class PointConversionRuleFactory(_ConfigFactory):
    """10 points per 1.00 of amount, for transactions."""

    class Meta:
        model = "points.PointConversionRule"

    tenant = factory.SubFactory(TenantFactory)
    code = factory.Sequence(lambda n: f"rule-{n}")
    base = "per_amount"
    unit_amount = Decimal("1.00")
    points_per_unit = 10
    event_types = factory.LazyFunction(lambda: ["transaction"])


class PointModifierFactory(_ConfigFactory):
    """A ×2 modifier; ``rules=[...]`` and ``tiers=[...]`` scope it."""

    class Meta:
        model = "points.PointModifier"
        skip_postgeneration_save = True

    tenant = factory.SubFactory(TenantFactory)
    code = factory.Sequence(lambda n: f"modifier-{n}")
    multiplier = Decimal(2)

    @factory.post_generation
    def rules(self, create, extracted, **kwargs):
        if create and extracted:
            self.rules.set(extracted)

    @factory.post_generation
    def tiers(self, create, extracted, **kwargs):
        if create and extracted:
            self.tiers.set(extracted)


# --- member rows ----------------------------------------------------------------------------------
class MemberEventFactory(factory.django.DjangoModelFactory):
    """A stored (not evaluated) transaction of 100.00, an hour ago."""

    class Meta:
        model = "members.MemberEvent"

    member = factory.SubFactory(MemberFactory)
    tenant = factory.SelfAttribute("member.tenant")
    source = "pos"
    event_id = factory.Sequence(lambda n: f"evt-{n}")
    type = "transaction"
    occurred_at = factory.LazyFunction(lambda: timezone.now() - timedelta(hours=1))
    amount = Decimal("100.00")
    body_hash = factory.Sequence(lambda n: f"{n:064x}")


class MemberBenefitFactory(factory.django.DjangoModelFactory):
    """An active tier grant, granted now (a row only: no audit, no message, no counter)."""

    class Meta:
        model = "benefits.MemberBenefit"

    member = factory.SubFactory(MemberFactory)
    tenant = factory.SelfAttribute("member.tenant")
    benefit = factory.SubFactory(BenefitFactory, tenant=factory.SelfAttribute("..tenant"))
    source = "tier"
    granted_at = factory.LazyFunction(timezone.now)
