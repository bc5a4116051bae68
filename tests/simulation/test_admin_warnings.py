"""Validation issues in the configuration portal: the change pages of tier types, tiers, promotion rules,
conversion rules and modifiers list the issues that concern the object, and a save that leaves one says
so; installed from the simulation app, so tiers and points never import simulation."""

import ast
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.urls import reverse

from points.models import PointConversionRule, PointModifier
from simulation.admin_warnings import ValidationWarningsMixin
from simulation.models import Scenario
from simulation.scenarios import save_scenario
from simulation.selectors import KIND_OF, validation_issues
from tests.factories import PromotionRuleFactory, TenantMembershipFactory, UserFactory, hotel_ladder
from tests.points.test_admin import rule_change_form as point_rule_change_form
from tests.simulation.scenario_plan import scenario_body
from tests.tiers.test_admin import messages_of, rule_change_form, url
from tiers.models import PromotionRule, Tier, TierType

pytestmark = pytest.mark.django_db

UNREACHABLE_SILVER = (
    "No promotion rule leads to tier 'silver' of 'hotel', yet it is marked climbable: members can only get it "
    "by a manual change. Add a promotion rule for it, or mark it not climbable if it is by invitation only."
)


@pytest.fixture
def logged_in(client, tenant):
    user = UserFactory(username="anna")
    user.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["tiers", "points"]))
    TenantMembershipFactory(user=user, tenant=tenant)
    client.force_login(user)
    return client


def shown(response) -> list[tuple[str, str]]:
    """The issues the change form lists, as (code, message)."""
    assert response.status_code == 200
    return [(i.code, i.message) for i in response.context["validation_issues"]]


def test_every_validated_admin_carries_the_warnings():
    from django.contrib import admin

    assert set(KIND_OF) == {TierType, Tier, PromotionRule, PointConversionRule, PointModifier}
    for model in KIND_OF:
        assert isinstance(admin.site.get_model_admin(model), ValidationWarningsMixin), model


def test_tier_and_tier_type_pages_show_their_issues(logged_in, tenant):
    tier_type, tiers, _ = hotel_ladder(tenant)  # silver is climbable and no rule leads to it
    page = logged_in.get(url(Tier, "change", tiers["silver"].pk))
    assert shown(page) == [("tier_unreachable", UNREACHABLE_SILVER)]
    assert UNREACHABLE_SILVER.replace("'", "&#x27;") in page.content.decode()
    assert shown(logged_in.get(url(TierType, "change", tier_type.pk))) == [("tier_unreachable", UNREACHABLE_SILVER)]
    gold = logged_in.get(url(Tier, "change", tiers["gold"].pk))
    assert shown(gold) == []
    assert "validation-issues" not in gold.content.decode()


def test_saving_a_rule_that_breaks_the_ladder_warns(logged_in, tenant):
    tier_type, tiers, gold_rule = hotel_ladder(tenant)
    silver = PromotionRuleFactory(
        tier_type=tier_type,
        target_tier=tiers["silver"],
        code="silver-by-nights",
        criteria=[{"metric": "quantity:nights", "operator": "gte", "value": 10, "window_days": None}],
    )
    assert shown(logged_in.get(url(PromotionRule, "change", silver.pk))) == []

    response = logged_in.post(
        url(PromotionRule, "change", silver.pk), rule_change_form(silver, criteria="quantity:nights >= 30")
    )
    assert response.status_code == 302
    silver.refresh_from_db()
    assert silver.criteria[0]["value"] == 30
    expected = (
        "In 'hotel', tier 'gold' (rank 3) is reached with nights ≥ 25 (rule 'hotel-gold-by-nights'), which is not "
        "more than the lower tier 'silver' (rank 2) asks: nights ≥ 30 (rule 'silver-by-nights'). Members would "
        "reach 'gold' no later than 'silver'. Raise the threshold of the higher tier or lower the other."
    )
    assert f"Validation: {expected}" in messages_of(response)
    assert shown(logged_in.get(url(PromotionRule, "change", gold_rule.pk))) == [("thresholds_not_rising", expected)]


def test_save_and_continue_lists_the_issues_on_the_form_only(logged_in, tenant):
    tier_type, tiers, _ = hotel_ladder(tenant)
    silver = PromotionRuleFactory(tier_type=tier_type, target_tier=tiers["silver"], code="silver-by-nights")
    response = logged_in.post(
        url(PromotionRule, "change", silver.pk),
        {**rule_change_form(silver, criteria="quantity:nights >= 30"), "_continue": "Save"},
        follow=True,
    )
    assert [c for c, _ in shown(response)] == ["thresholds_not_rising"]
    assert not [m for m in messages_of(response) if m.startswith("Validation:")]


def test_a_draft_is_judged_as_if_it_were_live(logged_in, tenant):
    tier_type, tiers, _ = hotel_ladder(tenant)
    draft = PromotionRuleFactory(
        tier_type=tier_type, target_tier=tiers["platinum"], code="drop", direction="demotion", status="draft"
    )
    assert [c for c, _ in shown(logged_in.get(url(PromotionRule, "change", draft.pk)))] == ["demotion_points_up"]


def test_conversion_rule_and_modifier_pages(logged_in, tenant):
    hotel_ladder(tenant)
    rule = PointConversionRule.objects.create(
        tenant=tenant, code="stay-bonus", base="per_event", points_per_unit=50, cap_per_event=100
    )
    assert shown(logged_in.get(url(PointConversionRule, "change", rule.pk))) == []
    response = logged_in.post(
        url(PointConversionRule, "change", rule.pk),
        point_rule_change_form(
            rule, base="per_event", points_per_unit=50, unit_amount="", product="", event_types=[], cap_per_event=40
        ),
    )
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    assert messages_of(response)[-1] == (
        "Validation: The point rule 'stay-bonus' gives 50 points for each event, but its cap per event 40 is lower: "
        "every such event is cut to the cap. Raise the cap or lower the rule's points."
    )
    modifier = PointModifier.objects.create(
        tenant=tenant, code="double", multiplier=Decimal(2), starts_at="2026-07-01T00:00Z", ends_at="2026-06-01T00:00Z"
    )
    assert [c for c, _ in shown(logged_in.get(url(PointModifier, "change", modifier.pk)))] == ["window_inverted"]


@pytest.mark.parametrize("app", ["tiers", "points"])
def test_tiers_and_points_do_not_import_simulation(app):
    for path in (Path(settings.BASE_DIR) / app).rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [n for n in names if n.split(".")[0] == "simulation"], path


# --- the scenario's page -----------------------------------------------------------------------------
@pytest.fixture
def planner(client, tenant):
    user = UserFactory(username="sam")
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="simulation"))
    TenantMembershipFactory(user=user, tenant=tenant)
    client.force_login(user)
    return client


@pytest.fixture
def gold_at_one_night(tenant, plan):
    """Silver at 10 nights is live; the scenario swaps Gold's 25 nights for 1 night."""
    PromotionRuleFactory(
        tier_type=plan["hotel"],
        target_tier=plan["silver"],
        code="silver-by-nights",
        criteria=[{"metric": "quantity:nights", "operator": "gte", "value": 10, "window_days": None}],
    )
    return save_scenario(tenant=tenant, scenario=Scenario(), data=scenario_body(plan), actor="someone")


GOLD_BELOW_SILVER = (
    "In 'hotel', tier 'gold' (rank 3) is reached with nights ≥ 1 (rule 'gold-at-1-night'), which is not more than "
    "the lower tier 'silver' (rank 2) asks: nights ≥ 10 (rule 'silver-by-nights'). Members would reach 'gold' no "
    "later than 'silver'. Raise the threshold of the higher tier or lower the other."
)


def scenario_url(scenario, view="change"):
    return reverse(f"admin:simulation_scenario_{view}", args=[scenario.pk])


def test_scenario_page_shows_the_issues_of_the_program_it_would_make_live(planner, tenant, gold_at_one_night):
    assert validation_issues(tenant=tenant) == []  # live, Gold at 25 nights rises above Silver
    page = planner.get(scenario_url(gold_at_one_night))
    assert shown(page) == [("thresholds_not_rising", GOLD_BELOW_SILVER)]
    html = page.content.decode()
    assert 'class="validate-link"' in html
    assert scenario_url(gold_at_one_night, "validate") in html
    assert "Publish…" in html  # the scenario's own tools stay


def test_validate_reports_on_the_scenario_page(planner, tenant, plan, gold_at_one_night):
    response = planner.get(scenario_url(gold_at_one_night, "validate"), follow=True)
    assert response.redirect_chain == [(scenario_url(gold_at_one_night), 302)]
    assert messages_of(response) == [f"Validation: {GOLD_BELOW_SILVER}"]
    assert GOLD_BELOW_SILVER.replace("'", "&#x27;") in response.content.decode()
    clean = save_scenario(
        tenant=tenant, scenario=Scenario(), data=scenario_body(plan, code="none", promotion_rules={}), actor="x"
    )
    assert messages_of(planner.get(scenario_url(clean, "validate"), follow=True)) == [
        "Validation found no issues in the program this scenario would make live."
    ]


def test_validate_another_tenants_scenario_is_not_found(planner, other_tenant):
    theirs = Scenario.objects.create(tenant=other_tenant, code="theirs", name="Theirs")
    assert planner.get(scenario_url(theirs, "validate")).status_code == 404
