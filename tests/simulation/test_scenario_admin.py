"""The scenario portal: the page offers the tenant's drafts to include and active objects to exclude,
saves through ``save_scenario`` (refusals on the fields they name), and publishes through
``publish_scenario`` after a confirmation that shows what will change. Nothing of another tenant shows."""

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse

from audit.models import AuditEntry
from points.models import PointConversionRule
from simulation.models import Scenario
from simulation.scenarios import save_scenario
from tests.factories import TenantMembershipFactory, UserFactory
from tests.simulation.scenario_plan import scenario_body
from tiers.models import PromotionRule, Tier
from tiers.services import save_promotion_rule

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:simulation_scenario_changelist")
ADD = reverse("admin:simulation_scenario_add")


def change_url(scenario: Scenario) -> str:
    return reverse("admin:simulation_scenario_change", args=[scenario.pk])


def publish_url(scenario: Scenario) -> str:
    return reverse("admin:simulation_scenario_publish", args=[scenario.pk])


@pytest.fixture
def staff(tenant: Any) -> Any:
    user = UserFactory(username="anna")
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="simulation"))
    TenantMembershipFactory(user=user, tenant=tenant)
    return user


@pytest.fixture
def logged_in(client: Any, staff: Any) -> Any:
    client.force_login(staff)
    return client


@pytest.fixture
def saved(tenant: Any, plan: dict[str, Any]) -> Scenario:
    return save_scenario(tenant=tenant, scenario=Scenario(), data=scenario_body(plan), actor="someone")


@pytest.fixture
def theirs(other_tenant: Any, foreign: dict[str, Any]) -> Scenario:
    data = {"code": "theirs", "name": "Their plan", "promotion_rules": {"include": [foreign["draft_rule"].pk]}}
    return save_scenario(tenant=other_tenant, scenario=Scenario(), data=data, actor="someone")


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def _form(plan: dict[str, Any], tenant: Any, **changes: Any) -> dict[str, Any]:
    """The add page's POST: the API example's scenario, Silver at ×1.25 in the inline."""
    return {
        "tenant": tenant.pk,
        "code": "gold-10",
        "name": "Gold at 1 night",
        "include_promotion_rules": [plan["draft_rule"].pk],
        "exclude_promotion_rules": [plan["gold_rule"].pk],
        "include_point_rules": [plan["double"].pk],
        "exclude_point_rules": [plan["base"].pk],
        "include_modifiers": [plan["triple"].pk],
        "exclude_modifiers": [plan["weekend"].pk],
        "tier_overrides-TOTAL_FORMS": "1",
        "tier_overrides-INITIAL_FORMS": "0",
        "tier_overrides-0-tier": plan["silver"].pk,
        "tier_overrides-0-point_multiplier": "1.25",
        **changes,
    }


def test_list_shows_only_the_tenants_scenarios(logged_in, saved, theirs):
    response = logged_in.get(CHANGELIST)

    assert response.status_code == 200
    page = response.content.decode()
    assert "gold-10" in page
    assert "theirs" not in page


def test_add_page_offers_drafts_to_include_and_active_objects_to_exclude(logged_in, plan, foreign):
    form = logged_in.get(ADD).context["adminform"].form

    def offered(field: str) -> set[str]:
        return set(form.fields[field].queryset.values_list("code", flat=True))

    assert offered("include_promotion_rules") == {"gold-at-1-night"}
    assert offered("exclude_promotion_rules") == {"hotel-gold-by-nights"}
    assert offered("include_point_rules") == {"double"}
    assert offered("exclude_point_rules") == {"base"}
    assert offered("include_modifiers") == {"triple"}
    assert offered("exclude_modifiers") == {"weekend"}


def test_add_saves_the_scenario_through_the_service(logged_in, tenant, plan):
    response = logged_in.post(ADD, _form(plan, tenant))

    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    scenario = Scenario.objects.get(tenant=tenant, code="gold-10")
    assert list(scenario.include_promotion_rules.values_list("code", flat=True)) == ["gold-at-1-night"]
    assert list(scenario.exclude_modifiers.values_list("code", flat=True)) == ["weekend"]
    assert list(scenario.tier_overrides.values_list("tier__code", "point_multiplier")) == [("silver", Decimal("1.25"))]
    assert set(scenario.fingerprint) == {"promotion_rules", "point_rules", "modifiers", "tier_overrides"}
    assert (scenario.created_by, scenario.published_at) == ("user:anna", None)
    assert list(AuditEntry.objects.values_list("action", "actor")) == [("scenario.created", "user:anna")]


def test_a_refused_save_shows_on_the_field_and_stores_nothing(logged_in, tenant, plan, saved):
    other = save_scenario(tenant=tenant, scenario=Scenario(), data={"code": "other", "name": "Other"}, actor="x")
    audited = AuditEntry.objects.count()

    response = logged_in.post(change_url(other), _form(plan, tenant, code="gold-10", name="Other"))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"code": ["Scenario 'gold-10' already exists."]}
    other.refresh_from_db()
    assert (other.code, other.include_promotion_rules.count(), other.tier_overrides.count()) == ("other", 0, 0)
    assert AuditEntry.objects.count() == audited


def test_a_stale_choice_is_shown_and_refused_by_the_service(logged_in, tenant, plan, saved):
    """The included draft went active since: the page still shows it chosen, and saving says why not."""
    rule = PromotionRule.objects.get(pk=plan["draft_rule"].pk)
    rule.status = "active"
    save_promotion_rule(tenant=tenant, rule=rule, actor="someone")

    response = logged_in.post(change_url(saved), _form(plan, tenant, **{"tier_overrides-INITIAL_FORMS": "0"}))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "include_promotion_rules": [
            f"The promotion rule 'gold-at-1-night' ({rule.pk}) is active: only drafts can be included."
        ]
    }


def test_publish_asks_first_showing_what_will_change(logged_in, plan, saved):
    response = logged_in.get(publish_url(saved))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Publishing makes this scenario live" in page
    assert "gold-at-1-night" in page
    assert "hotel-gold-by-nights" in page
    assert "<td>1.00</td><td>1.25</td>" in page
    assert PromotionRule.objects.get(pk=plan["draft_rule"].pk).status == "draft"


def test_publish_through_the_page(logged_in, tenant, plan, saved):
    response = logged_in.post(publish_url(saved))

    assert response.status_code == 302
    assert response.url == change_url(saved)
    assert messages_of(response) == [
        "Gold at 1 night is live: 3 draft(s) made active, 3 archived, 1 tier multiplier(s) set."
    ]
    saved.refresh_from_db()
    assert saved.published_at is not None
    assert PromotionRule.objects.get(pk=plan["draft_rule"].pk).status == "active"
    assert PointConversionRule.objects.get(pk=plan["base"].pk).status == "archived"
    assert Tier.objects.get(pk=plan["silver"].pk).point_multiplier == Decimal("1.25")
    assert AuditEntry.objects.filter(action="scenario.published", actor="user:anna").count() == 1


def test_a_published_scenario_is_read_only_and_not_published_again(logged_in, tenant, plan, saved):
    logged_in.post(publish_url(saved))

    page = logged_in.get(change_url(saved))

    assert page.status_code == 200
    assert not page.context["has_change_permission"]
    assert "Publish…" not in page.content.decode()
    response = logged_in.post(publish_url(saved))
    assert response.status_code == 302
    assert messages_of(response)[-1].startswith(
        "Gold at 1 night was not published. The scenario 'gold-10' was published at "
    )


def test_a_stale_scenario_is_not_published_and_the_page_says_why(logged_in, tenant, plan, saved):
    silver = Tier.objects.get(pk=plan["silver"].pk)
    silver.point_multiplier = Decimal("1.10")
    silver.save()

    page = logged_in.get(publish_url(saved)).content.decode()
    response = logged_in.post(publish_url(saved))

    assert f"The tier &#x27;silver&#x27; ({silver.pk}) changed since the scenario was saved." in page
    assert 'value="Publish"' not in page
    assert messages_of(response) == [
        "Gold at 1 night was not published. Something the scenario names changed since it was saved; review it "
        f"and save it again. The tier 'silver' ({silver.pk}) changed since the scenario was saved."
    ]
    saved.refresh_from_db()
    assert saved.published_at is None
    assert PromotionRule.objects.get(pk=plan["draft_rule"].pk).status == "draft"


def test_publish_action_over_the_selected_scenarios(logged_in, tenant, plan, saved):
    empty = save_scenario(tenant=tenant, scenario=Scenario(), data={"code": "empty", "name": "Empty"}, actor="x")

    response = logged_in.post(
        CHANGELIST, {"action": "publish_selected", "_selected_action": [saved.pk, empty.pk]}, follow=True
    )

    assert messages_of(response) == [
        "Gold at 1 night is live: 3 draft(s) made active, 3 archived, 1 tier multiplier(s) set.",
        "Empty is live: 0 draft(s) made active, 0 archived, 0 tier multiplier(s) set.",
    ]
    assert Scenario.objects.filter(published_at__isnull=False).count() == 2


def test_another_tenants_scenario_is_not_found(logged_in, theirs):
    assert logged_in.get(publish_url(theirs)).status_code == 404
    assert logged_in.post(publish_url(theirs)).status_code == 404
    assert logged_in.get(change_url(theirs)).status_code == 302  # the admin's "does not exist" redirect
    theirs.refresh_from_db()
    assert theirs.published_at is None
