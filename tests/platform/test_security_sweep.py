"""Every API route, from the OpenAPI schema: no token → 401, a token without the scope → 403, another
tenant's ids → 404, malformed JSON → 400; always problem+json, never a 5xx, and nothing stored."""

import re

import pytest
from django.db import transaction
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from audit.models import AuditEntry
from benefits.models import Benefit, CampaignBenefitMapping, EventCode, MemberBenefit, TierBenefitMapping
from members.models import Member, MemberEvent
from outbox.emit import emit
from outbox.models import Delivery, OutboxMessage, WebhookSubscription
from points.models import PointConversionRule, PointModifier, PointPolicy, PointTransaction
from tests.factories import MemberFactory, hotel_ladder
from tests.helpers import assert_problem
from tiers.models import MemberTierAssignment, PromotionRule, Tier, TierType

pytestmark = pytest.mark.django_db
PUBLIC = {"/api/v1/health"}
# Valid bodies for the routes that validate the body before looking the member up (so that the
# other-tenant case is about the id, not the body).
BODIES = {
    ("post", "/api/v1/member/{member_id}/event"): {
        "event_id": "x1",
        "source": "pos",
        "type": "mission",
        "occurred_at": "2026-11-01T10:00:00+07:00",
    },
    ("put", "/api/v1/member/{member_id}/tier"): {"tier_type": "hotel", "tier": "gold", "reason": "r"},
    ("delete", "/api/v1/member/{member_id}/tier"): {"tier_type": "hotel", "reason": "r"},
}
WRITES = {"post", "put", "patch", "delete"}
# Campaign codes are free strings, not ids of tenant objects: any code lists (only the caller's
# mappings) and accepts mappings; another tenant's benefit in the body is refused with a 422.
FREE_KEYS = {("get", "/api/v1/campaign/{campaign_code}/benefit"), ("post", "/api/v1/campaign/{campaign_code}/benefit")}


def _routes() -> list[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return sorted(
        (method, path)
        for path, operations in schema["paths"].items()
        for method in operations
        if path not in PUBLIC and method in {"get", *WRITES}
    )


ROUTES = _routes()


@pytest.fixture
def world(tenant, other_tenant, api_client_for):
    """Both tenants hold a ladder, a member, an event and an audit entry; returns globex's ids."""
    ids = {}
    for owner, member_id in ((tenant, "ann"), (other_tenant, "theirs")):
        tier_type, tiers, rule = hotel_ladder(owner)
        member = MemberFactory(tenant=owner, external_id=member_id)
        client = api_client_for(owner)
        client.post(f"/api/v1/member/{member_id}/tier")
        event = client.post(
            f"/api/v1/member/{member_id}/event",
            {"event_id": "e1", "source": "pos", "type": "mission", "occurred_at": "2026-11-01T10:00:00+07:00"},
            format="json",
        ).json()
        audit = AuditEntry.objects.filter(tenant=owner).first()
        point_rule = PointConversionRule.objects.create(tenant=owner, code="base", unit_amount=1)
        modifier = PointModifier.objects.create(tenant=owner, code="double")
        benefit = Benefit.objects.create(tenant=owner, code="late", name="Late checkout", is_template=True)
        TierBenefitMapping.objects.create(tenant=owner, tier=tiers["gold"], benefit=benefit)
        CampaignBenefitMapping.objects.create(tenant=owner, campaign_code="SPRING", benefit=benefit)
        event_code = EventCode.objects.create(tenant=owner, code="VIP", action="award_points", points=100)
        voucher = Benefit.objects.create(tenant=owner, code="voucher", name="Voucher", usage_limit=2)
        grant = MemberBenefit.objects.create(
            tenant=owner, member=member, benefit=voucher, source="manual", granted_at=member.registered_at
        )
        subscription = WebhookSubscription.objects.create(tenant=owner, url="https://hooks.test/h", secret="whsec_x")
        with transaction.atomic():
            message = emit(tenant=owner, type="tier.changed", member_id=member_id, data={})
        Delivery.objects.create(tenant=owner, message=message, destination="broker", status="dead")
        ids[owner.slug] = {
            "tier_type": tier_type.pk,
            "tier": tiers["gold"].pk,
            "rule": rule.pk,
            "member": member_id,
            "event": event["id"],
            "audit": audit.pk,
            "point_rule": point_rule.pk,
            "modifier": modifier.pk,
            "benefit": benefit.pk,
            "event_code": event_code.pk,
            "grant": grant.pk,
            "subscription": subscription.pk,
            "message": message.pk,
            "campaign_code": "SPRING",
        }
    return ids["globex"]


def _fill(path: str, ids: dict) -> str:
    for name, kind in (
        ("tier_id", "tier"),
        ("benefit_id", "benefit"),
        ("campaign_code", "campaign_code"),
        ("grant_id", "grant"),
    ):
        path = path.replace(f"{{{name}}}", str(ids[kind]))
    if path.startswith("/api/v1/point-conversion/rule/"):
        kind = "point_rule"
    elif path.startswith("/api/v1/point-conversion/modifier/"):
        kind = "modifier"
    elif path.startswith("/api/v1/tier/type/"):
        kind = "tier_type"
    elif path.startswith("/api/v1/tier/"):
        kind = "tier"
    elif path.startswith("/api/v1/promotion/rule/"):
        kind = "rule"
    elif path.startswith("/api/v1/audit/"):
        kind = "audit"
    elif path.startswith("/api/v1/benefit/"):
        kind = "benefit"
    elif path.startswith("/api/v1/event/code/"):
        kind = "event_code"
    elif path.startswith("/api/v1/webhook/subscription/"):
        kind = "subscription"
    elif path.startswith("/api/v1/outbox/"):
        kind = "message"  # a uuid
    else:
        kind = "event"
    path = path.replace("{member_id}", str(ids["member"]))
    return re.sub(r"\{[a-z_]+\}", str(ids[kind]), path)


def _snapshot() -> tuple:
    grants = tuple(MemberBenefit.objects.order_by("pk").values_list("pk", "status", "uses"))
    deliveries = tuple(Delivery.objects.order_by("pk").values_list("pk", "status", "attempts"))
    return (grants, deliveries), *(
        model.objects.count()
        for model in (
            AuditEntry,
            MemberEvent,
            OutboxMessage,
            Member,
            MemberTierAssignment,
            TierType,
            Tier,
            PromotionRule,
            PointConversionRule,
            PointModifier,
            PointPolicy,
            PointTransaction,
            Benefit,
            TierBenefitMapping,
            CampaignBenefitMapping,
            EventCode,
            WebhookSubscription,
        )
    )


def _call(client: APIClient, method: str, path: str, body=None, **extra):
    kwargs = {"format": "json"} if body is not None else {}
    return (
        getattr(client, method)(path, body, **kwargs, **extra)
        if body is not None
        else getattr(client, method)(path, **extra)
    )


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m.upper()} {p}" for m, p in ROUTES])
def test_route_refuses_what_it_must(method, path, world, api_client_for, tenant):
    target = _fill(path, world)
    before = _snapshot()

    assert_problem(_call(APIClient(), method, target), 401, "not_authenticated")

    no_scope = api_client_for(tenant, "")
    assert_problem(_call(no_scope, method, target), 403, "insufficient_scope")

    everything = api_client_for(tenant)
    if (method, path) in FREE_KEYS:
        if method == "post":
            response = _call(everything, method, target, {"benefit": world["benefit"]})
            assert response.status_code == 422, (response.status_code, response.content[:300])
    elif "{" in path:  # another tenant's ids: not found, never forbidden
        body = BODIES.get((method, path), {} if method in WRITES - {"delete"} else None)
        response = _call(everything, method, target, body)
        assert response.status_code == 404, (response.status_code, response.content[:300])
        assert response["Content-Type"] == "application/problem+json"

    if method in {"post", "put", "patch"}:
        malformed = everything.generic(
            method.upper(), target.replace(str(world["member"]), "ann"), '{"broken": ', content_type="application/json"
        )
        assert malformed.status_code in (400, 404), malformed.content[:300]
        assert malformed["Content-Type"] == "application/problem+json"

    assert _snapshot() == before
