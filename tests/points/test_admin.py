"""The points portal: every page renders for a tenant's staff, nothing of another tenant shows, and
every write goes through the services (audited, validated, refusals shown on the form)."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse

from audit.models import AuditEntry
from points import admin as points_admin
from points.models import PointBucket, PointConversionRule, PointModifier, PointPolicy, PointTransaction
from tests.factories import MemberFactory, TenantMembershipFactory, UserFactory, hotel_ladder
from tiers.models import TierType

pytestmark = pytest.mark.django_db

POINT_MODELS = [PointConversionRule, PointModifier, PointPolicy, PointTransaction]
OCCURRED = datetime(2026, 3, 4, 10, 30, tzinfo=UTC)


@pytest.fixture
def staff(tenant):
    """A staff user of tenant acme with every permission of the points app."""
    user = UserFactory(username="anna")
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="points"))
    TenantMembershipFactory(user=user, tenant=tenant)
    return user


@pytest.fixture
def logged_in(client, staff):
    client.force_login(staff)
    return client


def url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def audit_actions():
    return list(AuditEntry.objects.order_by("id").values_list("action", "actor"))


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def points_config(tenant, *, code="hotel"):
    """A ladder, a rule, a modifier scoped to it, the policy and one earn transaction (no services)."""
    tier_type, tiers, _ = hotel_ladder(tenant, code=code)
    rule = PointConversionRule.objects.create(
        tenant=tenant,
        code=f"{code}-spend",
        base="per_amount",
        unit_amount=Decimal("1.00"),
        points_per_unit=10,
        tier_type=tier_type,
        cap_per_event=75000,
    )
    modifier = PointModifier.objects.create(tenant=tenant, code=f"{code}-double", multiplier=2, bonus_points=50)
    modifier.rules.set([rule])
    modifier.tiers.set([tiers["gold"]])
    policy = PointPolicy.objects.create(tenant=tenant, welcome_points=500)
    member = MemberFactory(tenant=tenant)
    transaction = PointTransaction.objects.create(
        tenant=tenant,
        member=member,
        kind="earn",
        rule=rule,
        base=Decimal("120"),
        tier_multiplier=Decimal("1.50"),
        modifiers=[{"code": modifier.code, "multiplier": "2.000", "bonus_points": 50}],
        uncapped=410,
        points=300,
        capped_by="rule:day",
        occurred_at=OCCURRED,
    )
    return {
        PointConversionRule: rule,
        PointModifier: modifier,
        PointPolicy: policy,
        PointTransaction: transaction,
        "tiers": tiers,
        "tier_type": tier_type,
        "member": member,
    }


def rule_form(tenant, tier_type=None, **overrides):
    data = {
        "tenant": tenant.pk,
        "code": "hotel-spend",
        "name": "Hotel spend",
        "status": "active",
        "event_types": ["transaction"],
        "product": "hotel",
        "partner": "",
        "source": "",
        "channel": "",
        "min_amount": "",
        "effective_from_0": "",
        "effective_from_1": "",
        "effective_until_0": "",
        "effective_until_1": "",
        "base": "per_amount",
        "unit_amount": "1.00",
        "points_per_unit": 10,
        "quantity_name": "",
        "tier_type": tier_type.pk if tier_type else "",
        "group": "base",
        "priority": 0,
        "rounding": "down",
        "cap_per_event": 75000,
        "cap_per_day": "",
        "cap_per_week": "",
        "cap_per_month": "",
        "description": "",
    }
    data.update(overrides)
    return data


def rule_change_form(rule, **overrides):
    data = rule_form(rule.tenant, rule.tier_type, code=rule.code, name=rule.name)
    data.update(overrides)
    del data["tenant"]  # read-only once created
    return data


def modifier_form(tenant, *, rules=(), tiers=(), **overrides):
    data = {
        "tenant": tenant.pk,
        "code": "double-nights",
        "name": "Double nights",
        "status": "active",
        "campaign_code": "SPRING26",
        "multiplier": "2",
        "bonus_points": 50,
        "campaign_total": 100000,
        "starts_at_0": "2026-03-01",
        "starts_at_1": "00:00:00",
        "ends_at_0": "2026-04-01",
        "ends_at_1": "00:00:00",
        "days_of_week": [4, 5],
        "event_types": ["transaction"],
        "rules": [r.pk for r in rules],
        "tiers": [t.pk for t in tiers],
        "product": "",
        "partner": "",
    }
    data.update(overrides)
    return data


def modifier_change_form(modifier, **overrides):
    data = modifier_form(
        modifier.tenant,
        rules=modifier.rules.all(),
        tiers=modifier.tiers.all(),
        code=modifier.code,
        name=modifier.name,
        campaign_code=modifier.campaign_code,
        multiplier=str(modifier.multiplier),
        bonus_points=modifier.bonus_points,
        campaign_total=modifier.campaign_total or "",
        starts_at_0="",
        starts_at_1="",
        ends_at_0="",
        ends_at_1="",
        days_of_week=modifier.days_of_week,
        event_types=modifier.event_types,
    )
    data.update(overrides)
    del data["tenant"]
    return data


def policy_form(**overrides):
    data = {"welcome_points": 500, "cap_per_event": "", "cap_per_day": 10000, "cap_per_week": "", "cap_per_month": ""}
    data.update(overrides)
    return data


# --- pages render, scoped to the user's tenants ----------------------------------------------------
def test_points_admin_registers_exactly_these_models():
    ours = {m for m in admin.site._registry if m._meta.app_label == "points"}
    assert ours == set(POINT_MODELS)
    assert PointBucket not in admin.site._registry


@pytest.mark.parametrize("model", POINT_MODELS, ids=lambda m: m.__name__)
def test_every_page_renders_for_tenant_staff(logged_in, tenant, model):
    if model is PointPolicy:  # the add page, while the tenant has no policy yet
        assert logged_in.get(url(model, "add")).status_code == 200
    obj = points_config(tenant)[model]
    model_admin = admin.site._registry[model]
    assert logged_in.get(url(model, "changelist")).status_code == 200
    expected_add = 200 if model in (PointConversionRule, PointModifier) else 403
    assert logged_in.get(url(model, "add")).status_code == expected_add
    assert logged_in.get(url(model, "change", obj.pk)).status_code == 200
    assert logged_in.get(url(model, "history", obj.pk)).status_code == 200
    if isinstance(model_admin, points_admin.ServiceAdmin):
        version = obj.history.first().history_id
        assert logged_in.get(url(model, "simple_history", obj.pk, version)).status_code == 200
        expected_delete = 403 if model is PointPolicy else 200  # a policy is never deleted
        assert logged_in.get(url(model, "delete", obj.pk)).status_code == expected_delete


@pytest.mark.parametrize("model", POINT_MODELS, ids=lambda m: m.__name__)
def test_another_tenants_objects_are_invisible(logged_in, tenant, other_tenant, model):
    mine = points_config(tenant)[model]
    theirs = points_config(other_tenant)[model]

    changelist = logged_in.get(url(model, "changelist"))
    assert changelist.status_code == 200
    shown = list(changelist.context["cl"].queryset)
    assert theirs not in shown
    assert mine in shown
    assert {o.tenant_id for o in shown} == {tenant.pk}
    assert b"Globex" not in changelist.content  # not even in the tenant or tier type filters
    assert logged_in.get(url(model, "change", theirs.pk)).status_code == 302
    if isinstance(admin.site._registry[model], points_admin.ServiceAdmin):
        assert logged_in.get(url(model, "history", theirs.pk)).status_code == 404
        version = theirs.history.first().history_id
        assert logged_in.get(url(model, "simple_history", theirs.pk, version)).status_code == 404
        assert logged_in.get(url(model, "delete", theirs.pk)).status_code in (302, 403)
        assert logged_in.post(url(model, "delete", theirs.pk), {"post": "yes"}).status_code in (302, 403)
        assert model._default_manager.filter(pk=theirs.pk).exists()
    else:
        assert logged_in.get(url(model, "history", theirs.pk)).status_code == 302
    assert not AuditEntry.objects.exists()


def test_choices_offer_only_the_users_tenants(logged_in, tenant, other_tenant):
    mine = points_config(tenant)
    theirs = points_config(other_tenant)
    form = logged_in.get(url(PointConversionRule, "add")).context["adminform"].form
    assert list(form.fields["tenant"].queryset) == [tenant]
    assert list(form.fields["tier_type"].queryset) == [mine["tier_type"]]
    form = logged_in.get(url(PointModifier, "add")).context["adminform"].form
    assert list(form.fields["rules"].queryset) == [mine[PointConversionRule]]
    assert set(form.fields["tiers"].queryset) == set(mine["tiers"].values())
    # Posting another tenant's tier type or rules anyway is refused, and nothing is saved.
    response = logged_in.post(url(PointConversionRule, "add"), rule_form(tenant, theirs["tier_type"], code="x"))
    assert response.status_code == 200
    assert set(response.context["adminform"].form.errors) == {"tier_type"}
    data = modifier_form(tenant, rules=[theirs[PointConversionRule]], tiers=[theirs["tiers"]["gold"]], code="x")
    response = logged_in.post(url(PointModifier, "add"), data)
    assert response.status_code == 200
    assert set(response.context["adminform"].form.errors) == {"rules", "tiers"}
    assert not PointConversionRule.objects.filter(code="x").exists()
    assert not PointModifier.objects.filter(code="x").exists()
    assert not AuditEntry.objects.exists()


def test_bulk_delete_action_is_not_offered(logged_in, tenant):
    points_config(tenant)
    for model in POINT_MODELS:
        page = logged_in.get(url(model, "changelist"))
        assert page.context["action_form"] is None  # "delete selected" was the only action


def test_rule_list_reads_as_a_sentence(logged_in, tenant):
    points_config(tenant)
    page = logged_in.get(url(PointConversionRule, "changelist"))
    assert "10 pts per 1.00 × tier multiplier, cap 75,000 per event" in page.content.decode()


# --- conversion rules through the services ---------------------------------------------------------
def test_creating_a_rule_through_the_admin(logged_in, tenant):
    tier_type, _, _ = hotel_ladder(tenant)
    response = logged_in.post(url(PointConversionRule, "add"), rule_form(tenant, tier_type))
    assert response.status_code == 302
    rule = PointConversionRule.objects.get()
    assert (rule.tenant, rule.code, rule.base, rule.unit_amount, rule.points_per_unit) == (
        tenant,
        "hotel-spend",
        "per_amount",
        Decimal("1.00"),
        10,
    )
    assert (rule.event_types, rule.product, rule.tier_type, rule.cap_per_event, rule.cap_per_day) == (
        ["transaction"],
        "hotel",
        tier_type,
        75000,
        None,
    )
    entries = list(AuditEntry.objects.all())
    assert [(e.action, e.actor, e.target_id, e.tenant_id) for e in entries] == [
        ("pointconversionrule.created", "user:anna", str(rule.pk), tenant.pk)
    ]
    assert rule.history.get().history_user.username == "anna"


def test_a_rule_for_every_event_type_stores_an_empty_list(logged_in, tenant):
    response = logged_in.post(url(PointConversionRule, "add"), rule_form(tenant, event_types=[]))
    assert response.status_code == 302
    assert PointConversionRule.objects.get().event_types == []


def test_per_amount_rule_without_unit_amount_is_refused_on_the_field(logged_in, tenant):
    response = logged_in.post(url(PointConversionRule, "add"), rule_form(tenant, unit_amount=""))
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors == {"unit_amount": ["Required for per_amount."]}
    assert form["code"].value() == "hotel-spend"  # the page shows what was typed
    assert not PointConversionRule.objects.exists()
    assert not AuditEntry.objects.exists()


def test_duplicate_rule_code_is_shown_on_the_field(logged_in, tenant):
    rule = points_config(tenant)[PointConversionRule]
    other = PointConversionRule.objects.create(tenant=tenant, code="other", base="per_event")
    data = rule_change_form(other, code=rule.code, base="per_event", unit_amount="", tier_type="")
    response = logged_in.post(url(PointConversionRule, "change", other.pk), data)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "code": ["Point conversion rule 'hotel-spend' already exists."]
    }
    other.refresh_from_db()
    assert other.code == "other"
    # On the add page (tenant and code both on the form) the model's unique constraint says it first.
    response = logged_in.post(url(PointConversionRule, "add"), rule_form(tenant, code=rule.code))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "__all__": ["Point conversion rule with this Tenant and Code already exists."]
    }
    assert PointConversionRule.objects.count() == 2
    assert not AuditEntry.objects.exists()


def test_saving_an_unchanged_rule_writes_nothing(logged_in, tenant):
    rule = points_config(tenant)[PointConversionRule]
    data = rule_change_form(rule, event_types=[], product="", cap_per_event=75000)
    response = logged_in.post(url(PointConversionRule, "change", rule.pk), data)
    assert response.status_code == 302
    assert rule.history.count() == 1
    assert not AuditEntry.objects.exists()


def test_reverting_a_rule_goes_through_the_service(logged_in, tenant):
    tier_type, _, _ = hotel_ladder(tenant)
    assert logged_in.post(url(PointConversionRule, "add"), rule_form(tenant, tier_type)).status_code == 302
    rule = PointConversionRule.objects.get()
    changed = rule_change_form(rule, points_per_unit=20, name="Renamed", cap_per_event="")
    assert logged_in.post(url(PointConversionRule, "change", rule.pk), changed).status_code == 302
    rule.refresh_from_db()
    assert (rule.points_per_unit, rule.name, rule.cap_per_event) == (20, "Renamed", None)

    first = rule.history.earliest("history_date")
    revert_url = reverse("admin:points_pointconversionrule_simple_history", args=[rule.pk, first.history_id])
    page = logged_in.get(revert_url)
    assert page.status_code == 200
    initial = page.context["adminform"].form.initial
    assert (initial["points_per_unit"], initial["name"], initial["cap_per_event"]) == (10, "Hotel spend", 75000)
    response = logged_in.post(revert_url, rule_change_form(rule, points_per_unit=10, name="Hotel spend"))
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.points_per_unit, rule.name, rule.cap_per_event) == (10, "Hotel spend", 75000)
    assert audit_actions() == [
        ("pointconversionrule.created", "user:anna"),
        ("pointconversionrule.updated", "user:anna"),
        ("pointconversionrule.updated", "user:anna"),  # the revert
    ]
    revert = AuditEntry.objects.order_by("id").last()
    assert (revert.before["points_per_unit"], revert.after["points_per_unit"]) == (20, 10)


def test_deleting_a_rule_that_awarded_points_keeps_it_and_says_why(logged_in, tenant):
    rule = PointConversionRule.objects.create(tenant=tenant, code="spend", base="per_event", points_per_unit=5)
    PointTransaction.objects.create(
        tenant=tenant, member=MemberFactory(tenant=tenant), kind="earn", rule=rule, points=10, occurred_at=OCCURRED
    )
    response = logged_in.post(url(PointConversionRule, "delete", rule.pk), {"post": "yes"})
    assert response.status_code == 302
    assert response["Location"] == url(PointConversionRule, "change", rule.pk)
    assert messages_of(response) == ["Cannot delete spend: it awarded 1 point transaction. Archive it instead."]
    assert PointConversionRule.objects.filter(pk=rule.pk).exists()
    assert not AuditEntry.objects.exists()


def test_deleting_an_unused_rule_goes_through_the_service(logged_in, tenant):
    rule = PointConversionRule.objects.create(tenant=tenant, code="spend", base="per_event", points_per_unit=5)
    response = logged_in.post(url(PointConversionRule, "delete", rule.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not PointConversionRule.objects.filter(pk=rule.pk).exists()
    assert list(AuditEntry.objects.values_list("action", "actor", "target_id")) == [
        ("pointconversionrule.deleted", "user:anna", str(rule.pk))
    ]


# --- modifiers through the services ----------------------------------------------------------------
def test_creating_a_modifier_with_its_scope_through_the_admin(logged_in, tenant):
    config = points_config(tenant)
    rule, tiers = config[PointConversionRule], config["tiers"]
    other_rule = PointConversionRule.objects.create(tenant=tenant, code="other", base="per_event")
    data = modifier_form(tenant, rules=[rule], tiers=[tiers["gold"], tiers["platinum"]])
    response = logged_in.post(url(PointModifier, "add"), data)
    assert response.status_code == 302
    modifier = PointModifier.objects.get(code="double-nights")
    assert (modifier.tenant, modifier.multiplier, modifier.bonus_points, modifier.campaign_total) == (
        tenant,
        Decimal(2),
        50,
        100000,
    )
    assert (modifier.days_of_week, modifier.event_types, modifier.campaign_code, modifier.pool_used) == (
        [4, 5],
        ["transaction"],
        "SPRING26",
        0,
    )
    assert (modifier.starts_at, modifier.ends_at) == (
        datetime(2026, 3, 1, tzinfo=UTC),
        datetime(2026, 4, 1, tzinfo=UTC),
    )
    assert list(modifier.rules.all()) == [rule]
    assert other_rule not in modifier.rules.all()
    assert set(modifier.tiers.all()) == {tiers["gold"], tiers["platinum"]}
    assert list(AuditEntry.objects.values_list("action", "actor", "target_id")) == [
        ("pointmodifier.created", "user:anna", str(modifier.pk))
    ]
    assert modifier.history.get().history_user.username == "anna"


def test_changing_only_a_modifiers_scope_is_one_audited_save(logged_in, tenant):
    config = points_config(tenant)
    modifier, tiers = config[PointModifier], config["tiers"]
    data = modifier_change_form(modifier, tiers=[tiers["silver"].pk], rules=[])
    response = logged_in.post(url(PointModifier, "change", modifier.pk), data)
    assert response.status_code == 302
    assert list(modifier.tiers.all()) == [tiers["silver"]]
    assert not modifier.rules.exists()
    assert audit_actions() == [("pointmodifier.updated", "user:anna")]
    # The same page saved again changes nothing and writes nothing.
    assert logged_in.post(url(PointModifier, "change", modifier.pk), data).status_code == 302
    assert audit_actions() == [("pointmodifier.updated", "user:anna")]


def test_reverting_a_modifier_saves_it_and_its_scope_through_the_service(logged_in, tenant):
    config = points_config(tenant)
    modifier, tiers = config[PointModifier], config["tiers"]
    data = modifier_change_form(modifier, multiplier="3")
    assert logged_in.post(url(PointModifier, "change", modifier.pk), data).status_code == 302
    first = modifier.history.earliest("history_date")
    revert_url = url(PointModifier, "simple_history", modifier.pk, first.history_id)
    assert logged_in.get(revert_url).context["adminform"].form.initial["multiplier"] == Decimal(2)
    data = modifier_change_form(modifier, multiplier="2", tiers=[tiers["platinum"].pk])
    assert logged_in.post(revert_url, data).status_code == 302
    modifier.refresh_from_db()
    assert modifier.multiplier == Decimal(2)
    assert list(modifier.tiers.all()) == [tiers["platinum"]]
    assert audit_actions() == [("pointmodifier.updated", "user:anna")] * 2


def test_saving_a_modifier_keeps_its_campaign_pool(logged_in, tenant):
    modifier = points_config(tenant)[PointModifier]
    PointModifier.objects.filter(pk=modifier.pk).update(pool_used=1234)
    page = logged_in.get(url(PointModifier, "change", modifier.pk))
    assert "pool_used" not in page.context["adminform"].form.fields  # shown, never edited
    assert "1234" in page.content.decode()
    data = modifier_change_form(modifier, name="Double, renamed")
    assert logged_in.post(url(PointModifier, "change", modifier.pk), data).status_code == 302
    modifier.refresh_from_db()
    assert (modifier.name, modifier.pool_used) == ("Double, renamed", 1234)


def test_a_scope_of_another_tenant_is_refused_by_the_service(client, tenant, other_tenant, staff):
    """A user of both tenants may see both tenants' rules, but a modifier's scope stays in its tenant."""
    TenantMembershipFactory(user=staff, tenant=other_tenant)
    client.force_login(staff)
    theirs = points_config(other_tenant)
    data = modifier_form(tenant, rules=[theirs[PointConversionRule]], tiers=[theirs["tiers"]["gold"]])
    response = client.post(url(PointModifier, "add"), data)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "rules": ["Rules of another tenant."],
        "tiers": ["Tiers of another tenant."],
    }
    assert not PointModifier.objects.filter(tenant=tenant).exists()
    assert not AuditEntry.objects.exists()


def test_deleting_a_modifier_that_gave_pool_points_is_refused(logged_in, tenant):
    modifier = points_config(tenant)[PointModifier]
    PointModifier.objects.filter(pk=modifier.pk).update(pool_used=300)
    response = logged_in.post(url(PointModifier, "delete", modifier.pk), {"post": "yes"})
    assert response.status_code == 302
    assert messages_of(response) == [
        "Cannot delete hotel-double: its campaign pool has given 300 points. Archive it instead."
    ]
    assert PointModifier.objects.filter(pk=modifier.pk).exists()
    assert not AuditEntry.objects.exists()


# --- the point policy ------------------------------------------------------------------------------
def test_the_policy_is_created_once_and_changed_through_the_service(logged_in, tenant, other_tenant):
    PointPolicy.objects.create(tenant=other_tenant, welcome_points=1)
    page = logged_in.get(url(PointPolicy, "add"))
    assert list(page.context["adminform"].form.fields["tenant"].queryset) == [tenant]
    response = logged_in.post(url(PointPolicy, "add"), policy_form(tenant=tenant.pk))
    assert response.status_code == 302
    policy = PointPolicy.objects.get(tenant=tenant)
    assert (policy.welcome_points, policy.cap_per_day, policy.cap_per_event) == (500, 10000, None)
    assert logged_in.get(url(PointPolicy, "add")).status_code == 403  # one per tenant

    response = logged_in.post(url(PointPolicy, "change", policy.pk), policy_form(welcome_points=750))
    assert response.status_code == 302
    policy.refresh_from_db()
    assert (policy.welcome_points, policy.cap_per_day) == (750, 10000)
    entries = list(AuditEntry.objects.order_by("id"))
    assert [(e.action, e.actor, e.tenant_id) for e in entries] == [
        ("pointpolicy.updated", "user:anna", tenant.pk),
        ("pointpolicy.updated", "user:anna", tenant.pk),
    ]
    assert entries[0].before is None
    assert (entries[1].before["welcome_points"], entries[1].after["welcome_points"]) == (500, 750)
    assert policy.history.earliest("history_date").history_user.username == "anna"
    # Unchanged: nothing written.
    assert logged_in.post(url(PointPolicy, "change", policy.pk), policy_form(welcome_points=750)).status_code == 302
    assert AuditEntry.objects.count() == 2


# --- the ledger ------------------------------------------------------------------------------------
def test_transactions_are_read_only_and_show_their_breakdown(logged_in, tenant):
    config = points_config(tenant)
    transaction = config[PointTransaction]
    page = logged_in.get(url(PointTransaction, "change", transaction.pk))
    assert page.status_code == 200
    content = page.content.decode()
    assert "120 base × 1.5 tier × 2 (hotel-double) + 50 bonus (hotel-double) = 410; 300 after the cap (rule:day)" in (
        content
    )
    assert "<li>hotel-double: × 2, + 50 bonus points</li>" in content
    assert b'name="_save"' not in page.content
    assert logged_in.post(url(PointTransaction, "change", transaction.pk), {"points": 1}).status_code == 403
    assert logged_in.post(url(PointTransaction, "delete", transaction.pk), {"post": "yes"}).status_code == 403
    transaction.refresh_from_db()
    assert transaction.points == 300


def test_transactions_are_searched_by_member_external_id(logged_in, tenant):
    config = points_config(tenant)
    PointTransaction.objects.create(
        tenant=tenant, member=MemberFactory(tenant=tenant), kind="welcome", points=500, occurred_at=OCCURRED
    )
    page = logged_in.get(url(PointTransaction, "changelist"), {"q": config["member"].external_id})
    assert list(page.context["cl"].queryset) == [config[PointTransaction]]
    page = logged_in.get(url(PointTransaction, "changelist"), {"kind__exact": "welcome"})
    assert [t.kind for t in page.context["cl"].queryset] == ["welcome"]


def test_rule_filters_offer_only_the_users_tier_types(logged_in, tenant, other_tenant):
    points_config(tenant)
    points_config(other_tenant, code="airline")
    page = logged_in.get(url(PointConversionRule, "changelist"))
    assert "airline" not in page.content.decode()
    assert TierType.objects.count() == 2
