"""Publishing a scenario (POST /api/v1/simulation/scenario/{id}/publish).

One transaction: included drafts become active, excluded rules and modifiers archived, tier multipliers
written, each through its own service (one audit entry per object), exactly one ``config_version``
bump, a ``scenario.published`` entry, no outbox message (configuration saves emit none). 409
``scenario_stale`` when anything the scenario names changed or disappeared since it was saved, 409
``scenario_published`` the second time; a refused publish changes nothing.
"""

from datetime import timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEntry
from outbox.models import OutboxMessage
from points.models import PointConversionRule, PointModifier, PointTransaction
from points.services import save_modifier
from simulation.models import Scenario
from tenancy.services import one_config_version
from tests.helpers import assert_problem, audit_trail, body_without_timestamps, config_version
from tests.simulation.scenario_plan import scenario_body
from tiers.models import MemberTierAssignment, PromotionRule, Tier
from tiers.services import delete_promotion_rule, save_promotion_rule, save_tier

pytestmark = pytest.mark.django_db

URL = "/api/v1/simulation/scenario"


@pytest.fixture
def scenario(api: Any, plan: dict[str, Any]) -> Scenario:
    response = api.post(URL, scenario_body(plan), format="json")
    assert response.status_code == 201, response.content
    return Scenario.objects.get(pk=response.json()["id"])


def _live(plan: dict[str, Any]) -> dict[str, Any]:
    """What publishing changes: statuses of the named objects, Silver's multiplier."""
    return {
        **{
            name: type(plan[name]).objects.filter(pk=plan[name].pk).values_list("status", flat=True).first()
            for name in ("gold_rule", "draft_rule", "base", "double", "weekend", "triple")
        },
        "silver": Tier.objects.get(pk=plan["silver"].pk).point_multiplier,
    }


def _everything(tenant: Any, plan: dict[str, Any]) -> tuple[Any, ...]:
    """What a refused publish must leave alone."""
    return (
        _live(plan),
        config_version(tenant),
        AuditEntry.objects.count(),
        list(Scenario.objects.values("pk", "published_at", "fingerprint")),
        OutboxMessage.objects.count(),
    )


def test_publish_makes_the_scenario_live_in_one_config_version(api, tenant, plan, scenario):
    version = config_version(tenant)
    audited = len(audit_trail(tenant))
    assert _live(plan) == {
        "gold_rule": "active",
        "draft_rule": "draft",
        "base": "active",
        "double": "draft",
        "weekend": "active",
        "triple": "draft",
        "silver": Decimal("1.00"),
    }

    response = api.post(f"{URL}/{scenario.pk}/publish")

    assert response.status_code == 200, response.content
    scenario.refresh_from_db()
    assert scenario.published_at is not None
    assert body_without_timestamps(response, "created_at", "updated_at", "published_at") == {
        "id": scenario.pk,
        **scenario_body(plan),
        "created_by": "service:svc-test",
        "config_version": version + 1,
    }
    assert response.json()["published_at"] == scenario.published_at.isoformat().replace("+00:00", "Z")
    assert _live(plan) == {
        "gold_rule": "archived",
        "draft_rule": "active",
        "base": "archived",
        "double": "active",
        "weekend": "archived",
        "triple": "active",
        "silver": Decimal("1.25"),
    }
    assert config_version(tenant) == version + 1
    assert audit_trail(tenant)[audited:] == [
        ("promotionrule.updated", "tiers.promotionrule", str(plan["draft_rule"].pk)),
        ("promotionrule.updated", "tiers.promotionrule", str(plan["gold_rule"].pk)),
        ("pointconversionrule.updated", "points.pointconversionrule", str(plan["double"].pk)),
        ("pointconversionrule.updated", "points.pointconversionrule", str(plan["base"].pk)),
        ("pointmodifier.updated", "points.pointmodifier", str(plan["triple"].pk)),
        ("pointmodifier.updated", "points.pointmodifier", str(plan["weekend"].pk)),
        ("tier.updated", "tiers.tier", str(plan["silver"].pk)),
        ("scenario.published", "simulation.scenario", str(scenario.pk)),
    ]
    published = AuditEntry.objects.latest("pk")
    assert (published.actor, published.before["published_at"]) == ("service:svc-test", None)
    assert published.after["activated"] == {
        "promotion_rules": [plan["draft_rule"].pk],
        "point_rules": [plan["double"].pk],
        "modifiers": [plan["triple"].pk],
    }
    assert published.after["archived"] == {
        "promotion_rules": [plan["gold_rule"].pk],
        "point_rules": [plan["base"].pk],
        "modifiers": [plan["weekend"].pk],
    }
    assert published.after["tier_multipliers"] == {str(plan["silver"].pk): "1.25"}
    assert not OutboxMessage.objects.exists()


def test_publish_twice_is_409_and_changes_nothing(api, tenant, plan, scenario):
    assert api.post(f"{URL}/{scenario.pk}/publish").status_code == 200
    before = _everything(tenant, plan)

    body = assert_problem(api.post(f"{URL}/{scenario.pk}/publish"), 409, "scenario_published")

    assert body["detail"].startswith("The scenario 'gold-10' was published at ")
    assert _everything(tenant, plan) == before


def test_a_published_scenario_cannot_be_replaced(api, tenant, plan, scenario):
    api.post(f"{URL}/{scenario.pk}/publish")
    before = _everything(tenant, plan)

    response = api.put(f"{URL}/{scenario.pk}", {"code": "gold-10", "name": "Changed"}, format="json")

    assert_problem(response, 409, "scenario_published")
    assert _everything(tenant, plan) == before


def _edit_draft_rule(tenant: Any, plan: dict[str, Any]) -> None:
    rule = PromotionRule.objects.get(pk=plan["draft_rule"].pk)
    rule.criteria = [{"metric": "quantity:nights", "operator": "gte", "value": 2, "window_days": None}]
    save_promotion_rule(tenant=tenant, rule=rule, actor="someone")


def _archive_excluded_rule(tenant: Any, plan: dict[str, Any]) -> None:
    rule = PromotionRule.objects.get(pk=plan["gold_rule"].pk)
    rule.status = "archived"
    save_promotion_rule(tenant=tenant, rule=rule, actor="someone")


def _delete_draft_rule(tenant: Any, plan: dict[str, Any]) -> None:
    delete_promotion_rule(tenant=tenant, rule=PromotionRule.objects.get(pk=plan["draft_rule"].pk), actor="someone")


def _retier_silver(tenant: Any, plan: dict[str, Any]) -> None:
    silver = Tier.objects.get(pk=plan["silver"].pk)
    silver.point_multiplier = Decimal("1.10")
    save_tier(tenant=tenant, tier=silver, actor="someone")


def _rescope_modifier(tenant: Any, plan: dict[str, Any]) -> None:
    triple = PointModifier.objects.get(pk=plan["triple"].pk)
    save_modifier(tenant=tenant, modifier=triple, actor="someone", tiers=[plan["gold"]])


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        pytest.param(
            _edit_draft_rule,
            lambda p: {
                "promotion_rules": [
                    f"The promotion rule 'gold-at-1-night' ({p['draft_rule'].pk}) changed since the scenario was saved."
                ]
            },
            id="included-draft-edited",
        ),
        pytest.param(
            _archive_excluded_rule,
            lambda p: {
                "promotion_rules": [
                    f"The promotion rule 'hotel-gold-by-nights' ({p['gold_rule'].pk}) changed since the scenario "
                    "was saved."
                ]
            },
            id="excluded-rule-archived",
        ),
        pytest.param(
            _delete_draft_rule,
            lambda p: {"promotion_rules": [f"The promotion rule {p['draft_rule'].pk} no longer exists."]},
            id="included-draft-deleted",
        ),
        pytest.param(
            _retier_silver,
            lambda p: {
                "tier_overrides": [f"The tier 'silver' ({p['silver'].pk}) changed since the scenario was saved."]
            },
            id="overridden-tier-edited",
        ),
        pytest.param(
            _rescope_modifier,
            lambda p: {
                "modifiers": [f"The modifier 'triple' ({p['triple'].pk}) changed since the scenario was saved."]
            },
            id="modifier-scope-changed",
        ),
    ],
)
def test_publish_of_a_stale_scenario_is_409_and_changes_nothing(api, tenant, plan, scenario, change, errors):
    change(tenant, plan)
    before = _everything(tenant, plan)

    body = assert_problem(api.post(f"{URL}/{scenario.pk}/publish"), 409, "scenario_stale")

    assert body["errors"] == errors(plan)
    assert _everything(tenant, plan) == before


def test_a_save_refused_during_publish_is_422_naming_the_object_and_nothing_is_kept(api, tenant, plan):
    """The modifier is processed last: the rules made active and archived before it roll back too."""
    PointModifier.objects.filter(pk=plan["triple"].pk).update(
        starts_at=timezone.now(), ends_at=timezone.now() - timedelta(days=1)
    )
    scenario_id = api.post(URL, scenario_body(plan), format="json").json()["id"]
    before = _everything(tenant, plan)

    response = api.post(f"{URL}/{scenario_id}/publish")

    assert assert_problem(response, 422, "validation_error")["errors"] == {
        "modifiers": [
            f"The modifier 'triple' ({plan['triple'].pk}) cannot be made active: ends_at: Must be after starts_at."
        ]
    }
    assert _everything(tenant, plan) == before


def test_saving_the_scenario_again_takes_the_change_in(api, tenant, plan, scenario):
    _edit_draft_rule(tenant, plan)
    assert api.put(f"{URL}/{scenario.pk}", scenario_body(plan), format="json").status_code == 200

    response = api.post(f"{URL}/{scenario.pk}/publish")

    assert response.status_code == 200, response.content
    assert PromotionRule.objects.get(pk=plan["draft_rule"].pk).status == "active"


def test_a_no_op_save_of_a_named_object_is_not_a_change(api, tenant, plan, scenario):
    """Saving a rule with the same values touches ``updated_at`` only: the plan still holds."""
    save_promotion_rule(tenant=tenant, rule=PromotionRule.objects.get(pk=plan["draft_rule"].pk), actor="someone")

    assert api.post(f"{URL}/{scenario.pk}/publish").status_code == 200


def test_an_override_equal_to_the_current_multiplier_writes_nothing(api, tenant, plan):
    body = scenario_body(
        plan,
        promotion_rules={"include": [plan["draft_rule"].pk]},
        point_rules={},
        modifiers={},
        tier_overrides=[{"tier": plan["gold"].pk, "point_multiplier": "1.50"}],
    )
    scenario_id = api.post(URL, body, format="json").json()["id"]
    version = config_version(tenant)
    audited = len(audit_trail(tenant))

    assert api.post(f"{URL}/{scenario_id}/publish").status_code == 200

    assert [action for action, _, _ in audit_trail(tenant)[audited:]] == ["promotionrule.updated", "scenario.published"]
    assert config_version(tenant) == version + 1


def test_publish_with_a_body_that_is_not_json_is_400_and_changes_nothing(api, tenant, plan, scenario):
    before = _everything(tenant, plan)

    response = api.post(f"{URL}/{scenario.pk}/publish", "{oops", content_type="application/json")

    assert_problem(response, 400, "malformed_json")
    assert _everything(tenant, plan) == before


def test_publish_of_an_unknown_scenario_is_404(api, tenant, plan):
    assert_problem(api.post(f"{URL}/999999/publish"), 404, "not_found")


# --- live evaluation after a publish ----------------------------------------------------------------
def _weekday_event(event_id: str) -> dict[str, Any]:
    """A stay of one night for 100.00 on a recent Monday–Thursday (tenant time), so no weekend
    modifier applies before or after the publish."""
    when = timezone.now() - timedelta(hours=1)
    while when.astimezone(ZoneInfo("Asia/Bangkok")).weekday() > 3:
        when -= timedelta(days=1)
    return {
        "event_id": event_id,
        "source": "pms",
        "type": "transaction",
        "occurred_at": when.isoformat(),
        "amount": "100.00",
        "quantities": {"nights": 1, "stays": 1},
    }


def test_publish_makes_live_evaluation_use_the_new_rules(api, tenant, plan, scenario, ann):
    before = api.post("/api/v1/member/ann/event", _weekday_event("e1"), format="json")
    assert before.status_code == 201, before.content
    assert (before.json()["points"]["total"], before.json()["tier_changes"]) == (1000, [])  # base: 10 per 1.00

    assert api.post(f"{URL}/{scenario.pk}/publish").status_code == 200
    after = api.post("/api/v1/member/ann/event", _weekday_event("e2"), format="json")

    assert after.status_code == 201, after.content
    body = after.json()
    assert [(t["rule"], t["points"]) for t in body["points"]["transactions"]] == [("double", 2000)]  # at Member
    assert [(c["from"], c["to"], c["rule"]) for c in body["tier_changes"]] == [("member", "gold", "gold-at-1-night")]
    assert MemberTierAssignment.objects.get(member=ann).tier.code == "gold"
    assert list(PointTransaction.objects.filter(member=ann).order_by("pk").values_list("rule__code", "points")) == [
        ("base", 1000),
        ("double", 2000),
    ]
    assert PointConversionRule.objects.get(pk=plan["base"].pk).status == "archived"


# --- one config_version for many saves --------------------------------------------------------------
def test_one_config_version_bumps_once_for_many_saves_and_not_at_all_on_error(tenant, plan):
    version = config_version(tenant)
    gold, silver = Tier.objects.get(pk=plan["gold"].pk), Tier.objects.get(pk=plan["silver"].pk)

    with transaction.atomic(), one_config_version():
        for tier, multiplier in ((gold, "2.00"), (silver, "1.50")):
            tier.point_multiplier = Decimal(multiplier)
            save_tier(tenant=tenant, tier=tier, actor="someone")
        with one_config_version():  # nested: the outer block bumps
            save_promotion_rule(tenant=tenant, rule=PromotionRule.objects.get(pk=plan["draft_rule"].pk), actor="x")
        assert config_version(tenant) == version

    assert config_version(tenant) == version + 1
    with pytest.raises(RuntimeError), transaction.atomic(), one_config_version():
        save_tier(tenant=tenant, tier=gold, actor="someone")
        raise RuntimeError("refused")
    assert config_version(tenant) == version + 1
    gold.point_multiplier = Decimal("3.00")
    save_tier(tenant=tenant, tier=gold, actor="someone")  # outside a block: bumps at once
    assert config_version(tenant) == version + 2
