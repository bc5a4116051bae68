"""The tier-program portal: every page renders for a tenant's staff, nothing of another tenant shows,
and every write goes through the services (audited, validated, refusals shown on the form)."""

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse

from audit.models import AuditEntry
from tests.factories import (
    MemberFactory,
    PromotionRuleFactory,
    TenantMembershipFactory,
    TierFactory,
    TierTypeFactory,
    UserFactory,
    hotel_ladder,
)
from tiers import admin as tiers_admin
from tiers.assignments import change_member_tier
from tiers.models import AssignmentSource, MemberTierChange, PromotionRule, Tier, TierReview, TierType

pytestmark = pytest.mark.django_db

TIER_MODELS = [TierType, Tier, PromotionRule, MemberTierChange]


@pytest.fixture
def staff(tenant):
    """A staff user of tenant acme with every permission of the tiers and members apps."""
    user = UserFactory(username="anna")
    user.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["tiers", "members"]))
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


def tier_type_form(tenant, **overrides):
    data = {
        "tenant": tenant.pk,
        "code": "hotel",
        "name": "Hotel status",
        "active": "on",
        "priority": 0,
        "mode": "hybrid",
        "qualification": "calendar_year",
        "window_days": "",
        "validity": "end_of_next_period",
        "validity_days": "",
        "grace_days": 90,
        "demotion_step": "to_qualified",
        "product": "",
        "partner": "",
        "tiers-TOTAL_FORMS": 0,
        "tiers-INITIAL_FORMS": 0,
        "tiers-MIN_NUM_FORMS": 0,
        "tiers-MAX_NUM_FORMS": 1000,
    }
    data.update(overrides)
    return data


def tier_row(index, code, rank, *, default=False, pk="", **overrides):
    prefix = f"tiers-{index}-"
    row = {
        "id": pk,
        "code": code,
        "name": code.title(),
        "rank": rank,
        "climbable": "on",
        "point_multiplier": "1.00",
        "available_from_0": "",
        "available_from_1": "",
        "available_until_0": "",
        "available_until_1": "",
    }
    if default:
        row["is_default"] = "on"
    row.update(overrides)
    return {prefix + k: v for k, v in row.items()}


def with_rows(data, *rows, initial=0):
    for row in rows:
        data.update(row)
    data["tiers-TOTAL_FORMS"] = len(rows)
    data["tiers-INITIAL_FORMS"] = initial
    return data


def rule_form(tier_type, target, **overrides):
    data = {
        "tier_type": tier_type.pk,
        "code": "gold-by-nights",
        "name": "Gold by nights",
        "direction": "promotion",
        "target_tier": target.pk,
        "status": "active",
        "priority": 0,
        "combinator": "any",
        "criteria": "quantity:nights >= 25\nquantity:stays >= 15",
        "effective_from_0": "",
        "effective_from_1": "",
        "effective_until_0": "",
        "effective_until_1": "",
        "description": "",
    }
    data.update(overrides)
    return data


def rule_change_form(rule, **overrides):
    data = rule_form(rule.tier_type, rule.target_tier, code=rule.code, name=rule.name)
    data.update(overrides)
    del data["tier_type"]  # read-only once created
    return data


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


# --- pages render, scoped to the user's tenants ----------------------------------------------------
def test_tiers_admin_registers_exactly_these_models():
    ours = {m for m in admin.site._registry if m._meta.app_label == "tiers"}
    assert ours == {*TIER_MODELS, TierReview}


def test_tier_review_runs_are_read_only_and_scoped(logged_in, tenant, other_tenant):
    mine = TierReview.objects.create(tenant=tenant, run_date="2026-11-01", members_reviewed=3)
    theirs = TierReview.objects.create(tenant=other_tenant, run_date="2026-11-01")
    changelist = logged_in.get(url(TierReview, "changelist"))
    assert changelist.status_code == 200
    assert list(changelist.context["cl"].queryset) == [mine]
    assert logged_in.get(url(TierReview, "change", mine.pk)).status_code == 200
    assert logged_in.get(url(TierReview, "change", theirs.pk)).status_code == 302
    assert logged_in.get(url(TierReview, "add")).status_code == 403


@pytest.mark.parametrize("model", TIER_MODELS, ids=lambda m: m.__name__)
def test_every_page_renders_for_tenant_staff(logged_in, tenant, model):
    _, tiers, _ = hotel_ladder(tenant)
    member = MemberFactory(tenant=tenant)
    change_member_tier(tenant=tenant, member=member, tier=tiers["gold"], reason="welcome gift", actor="system")
    obj = model._default_manager.get() if model is not Tier else tiers["gold"]
    assert logged_in.get(url(model, "changelist")).status_code == 200
    model_admin = admin.site._registry[model]
    expected_add = 200 if model is not MemberTierChange else 403
    assert logged_in.get(url(model, "add")).status_code == expected_add
    assert logged_in.get(url(model, "change", obj.pk)).status_code == 200
    assert logged_in.get(url(model, "history", obj.pk)).status_code == 200
    if isinstance(model_admin, tiers_admin.ServiceAdmin):
        version = obj.history.first().history_id
        assert logged_in.get(url(model, "simple_history", obj.pk, version)).status_code == 200
        assert logged_in.get(url(model, "delete", obj.pk)).status_code == 200


@pytest.mark.parametrize("model", TIER_MODELS, ids=lambda m: m.__name__)
def test_another_tenants_objects_are_invisible(logged_in, tenant, other_tenant, model):
    mine_type, mine_tiers, mine_rule = hotel_ladder(tenant)
    theirs_type, theirs_tiers, theirs_rule = hotel_ladder(other_tenant)
    for owner, tiers in ((tenant, mine_tiers), (other_tenant, theirs_tiers)):
        member = MemberFactory(tenant=owner)
        change_member_tier(tenant=owner, member=member, tier=tiers["gold"], reason="gift", actor="system")
    mine = {TierType: mine_type, Tier: mine_tiers["gold"], PromotionRule: mine_rule}.get(model)
    theirs = {TierType: theirs_type, Tier: theirs_tiers["gold"], PromotionRule: theirs_rule}.get(model)
    if model is MemberTierChange:
        mine, theirs = (MemberTierChange.objects.get(tenant=t) for t in (tenant, other_tenant))

    changelist = logged_in.get(url(model, "changelist"))
    assert changelist.status_code == 200
    shown = list(changelist.context["cl"].queryset)
    assert theirs not in shown
    assert mine in shown
    assert {o.tenant_id for o in shown} == {tenant.pk}
    assert b"Globex" not in changelist.content  # not even in the tenant or tier type filters
    assert logged_in.get(url(model, "change", theirs.pk)).status_code == 302
    if isinstance(admin.site._registry[model], tiers_admin.ServiceAdmin):
        assert logged_in.get(url(model, "history", theirs.pk)).status_code == 404
        version = theirs.history.first().history_id
        assert logged_in.get(url(model, "simple_history", theirs.pk, version)).status_code == 404
        assert logged_in.get(url(model, "delete", theirs.pk)).status_code == 302
        assert model._default_manager.filter(pk=theirs.pk).exists()
    else:
        assert logged_in.get(url(model, "history", theirs.pk)).status_code == 302


def test_choices_offer_only_the_users_tenants(logged_in, tenant, other_tenant):
    hotel_ladder(tenant)
    theirs_type, theirs_tiers, _ = hotel_ladder(other_tenant, code="airline")
    page = logged_in.get(url(PromotionRule, "add"))
    form = page.context["adminform"].form
    assert set(form.fields["tier_type"].queryset) == set(TierType.objects.filter(tenant=tenant))
    assert set(form.fields["target_tier"].queryset) == set(Tier.objects.filter(tenant=tenant))
    assert list(logged_in.get(url(TierType, "add")).context["adminform"].form.fields["tenant"].queryset) == [tenant]
    # Posting another tenant's tier type anyway is refused, and nothing is saved.
    response = logged_in.post(url(PromotionRule, "add"), rule_form(theirs_type, theirs_tiers["gold"], code="x"))
    assert response.status_code == 200
    assert set(response.context["adminform"].form.errors) == {"tier_type", "target_tier"}
    assert not PromotionRule.objects.filter(code="x").exists()


def test_bulk_delete_action_is_not_offered(logged_in, tenant):
    hotel_ladder(tenant)
    for model in (TierType, Tier, PromotionRule):
        page = logged_in.get(url(model, "changelist"))
        assert page.context["action_form"] is None  # "delete selected" was the only action


# --- writes go through the services ----------------------------------------------------------------
def test_creating_a_ladder_and_a_rule_through_the_admin(logged_in, tenant):
    data = with_rows(
        tier_type_form(tenant),
        tier_row(0, "silver", 2),  # listed before the default, but saved after it (first tier = default)
        tier_row(1, "member", 1, default=True),
        tier_row(2, "gold", 3),
    )
    response = logged_in.post(url(TierType, "add"), data)
    assert response.status_code == 302
    tier_type = TierType.objects.get()
    assert (tier_type.tenant, tier_type.code, tier_type.mode, tier_type.grace_days) == (tenant, "hotel", "hybrid", 90)
    assert list(tier_type.tiers.order_by("rank").values_list("code", "rank", "is_default", "tenant_id")) == [
        ("member", 1, True, tenant.pk),
        ("silver", 2, False, tenant.pk),
        ("gold", 3, False, tenant.pk),
    ]
    gold = Tier.objects.get(code="gold")
    response = logged_in.post(url(PromotionRule, "add"), rule_form(tier_type, gold))
    assert response.status_code == 302
    rule = PromotionRule.objects.get()
    assert (rule.tenant, rule.tier_type, rule.target_tier) == (tenant, tier_type, gold)
    assert rule.criteria == [
        {"metric": "quantity:nights", "operator": "gte", "value": 25, "window_days": None},
        {"metric": "quantity:stays", "operator": "gte", "value": 15, "window_days": None},
    ]
    entries = list(AuditEntry.objects.order_by("id"))
    assert [(e.action, e.actor, e.target_id) for e in entries] == [
        ("tiertype.created", "user:anna", str(tier_type.pk)),
        ("tier.created", "user:anna", str(Tier.objects.get(code="member").pk)),  # the default first
        ("tier.created", "user:anna", str(Tier.objects.get(code="silver").pk)),
        ("tier.created", "user:anna", str(gold.pk)),
        ("promotionrule.created", "user:anna", str(rule.pk)),
    ]
    assert {e.tenant_id for e in entries} == {tenant.pk}
    # The history of each row names the user (simple-history).
    assert tier_type.history.get().history_user.username == "anna"
    assert rule.history.get().history_user.username == "anna"


def test_rule_list_reads_as_a_sentence(logged_in, tenant):
    hotel_ladder(tenant)
    page = logged_in.get(url(PromotionRule, "changelist"))
    assert "Gold if nights ≥ 25 OR stays ≥ 15 in calendar year" in page.content.decode()


def test_tier_type_list_counts_tiers(logged_in, tenant):
    hotel_ladder(tenant)
    TierTypeFactory(tenant=tenant, code="empty", active=False)
    page = logged_in.get(url(TierType, "changelist"))
    counts = {t.code: t.tier_count for t in page.context["cl"].result_list}
    assert counts == {"hotel": 4, "empty": 0}


def test_new_active_ladder_without_a_default_tier_is_refused_on_the_tier_row(logged_in, tenant):
    data = with_rows(tier_type_form(tenant), tier_row(0, "member", 1), tier_row(1, "silver", 2))
    response = logged_in.post(url(TierType, "add"), data)
    assert response.status_code == 200
    formset = response.context["inline_admin_formsets"][0].formset
    assert formset.forms[0].errors == {"is_default": ["The first tier of an active tier type must be its default."]}
    # The page shows what was typed, and the whole save was rolled back.
    assert response.context["adminform"].form["code"].value() == "hotel"
    assert not TierType.objects.exists()
    assert not Tier.objects.exists()
    assert not AuditEntry.objects.exists()


def test_duplicate_code_is_shown_on_the_field(logged_in, tenant):
    TierTypeFactory(tenant=tenant, code="hotel")
    airline = TierTypeFactory(tenant=tenant, code="airline", active=False)
    data = tier_type_form(tenant, code="hotel", active="")
    del data["tenant"]
    response = logged_in.post(url(TierType, "change", airline.pk), data)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"code": ["Tier type 'hotel' already exists."]}
    airline.refresh_from_db()
    assert airline.code == "airline"
    assert not AuditEntry.objects.exists()


def test_activating_a_ladder_without_default_is_refused(logged_in, tenant):
    tier_type = TierTypeFactory(tenant=tenant, code="hotel", active=False)
    tier = TierFactory(tier_type=tier_type, code="member", rank=1, is_default=False)
    data = with_rows(tier_type_form(tenant), tier_row(0, "member", 1, pk=tier.pk, tier_type=tier_type.pk), initial=1)
    del data["tenant"]
    response = logged_in.post(url(TierType, "change", tier_type.pk), data)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "active": ["Make one of its tiers the default before activating this tier type."]
    }
    tier_type.refresh_from_db()
    assert tier_type.active is False
    assert not AuditEntry.objects.exists()


def test_moving_the_default_through_the_inline(logged_in, tenant):
    tier_type, _, _ = hotel_ladder(tenant)
    rows = [
        tier_row(
            i,
            t.code,
            t.rank,
            pk=t.pk,
            default=(t.code == "silver"),
            tier_type=tier_type.pk,
            point_multiplier=str(t.point_multiplier),
            climbable="on" if t.climbable else "",
        )
        for i, t in enumerate(tier_type.tiers.order_by("rank"))
    ]
    data = with_rows(tier_type_form(tenant), *rows, initial=4)
    del data["tenant"]
    response = logged_in.post(url(TierType, "change", tier_type.pk), data)
    assert response.status_code == 302
    assert list(Tier.objects.filter(is_default=True).values_list("code", flat=True)) == ["silver"]
    assert audit_actions() == [
        ("tier.updated", "user:anna"),  # member: the default moved to silver
        ("tier.updated", "user:anna"),  # silver
    ]  # nothing for the unchanged tier type and tiers, nor for the member row once the service updated it


def test_deleting_a_tier_held_by_a_member_keeps_it_and_says_why(logged_in, tenant):
    _, tiers, _ = hotel_ladder(tenant)
    member = MemberFactory(tenant=tenant)
    silver = tiers["silver"]
    change_member_tier(tenant=tenant, member=member, tier=silver, reason="gift", actor="system")
    before = AuditEntry.objects.count()
    response = logged_in.post(url(Tier, "delete", silver.pk), {"post": "yes"})
    assert response.status_code == 302
    assert response["Location"] == url(Tier, "change", silver.pk)
    assert messages_of(response) == [
        "Cannot delete Silver (hotel #2): held by 1 member; named in 1 tier change of member history. "
        "Archive it instead."
    ]
    assert Tier.objects.filter(pk=silver.pk).exists()
    assert AuditEntry.objects.count() == before


def test_deleting_a_held_tier_through_the_inline_is_refused(logged_in, tenant):
    tier_type, tiers, _ = hotel_ladder(tenant)
    member = MemberFactory(tenant=tenant)
    change_member_tier(tenant=tenant, member=member, tier=tiers["silver"], reason="gift", actor="system")
    before = AuditEntry.objects.count()
    rows = [
        tier_row(
            i,
            t.code,
            t.rank,
            pk=t.pk,
            default=t.is_default,
            tier_type=tier_type.pk,
            point_multiplier=str(t.point_multiplier),
            climbable="on" if t.climbable else "",
            **({"DELETE": "on"} if t.code == "silver" else {}),
        )
        for i, t in enumerate(tier_type.tiers.order_by("rank"))
    ]
    data = with_rows(tier_type_form(tenant, name="Renamed"), *rows, initial=4)
    del data["tenant"]
    response = logged_in.post(url(TierType, "change", tier_type.pk), data)
    assert response.status_code == 200
    formset = response.context["inline_admin_formsets"][0].formset
    assert formset.non_form_errors() == [
        "silver: Cannot delete Silver (hotel #2): held by 1 member; named in 1 tier change of member history. "
        "Archive it instead."
    ]
    assert b"Archive it instead." in response.content
    assert Tier.objects.filter(pk=tiers["silver"].pk).exists()
    tier_type.refresh_from_db()
    assert tier_type.name == "Hotel status"  # the whole save was rolled back
    assert AuditEntry.objects.count() == before


def test_deleting_an_unused_tier_goes_through_the_service(logged_in, tenant):
    _, tiers, _ = hotel_ladder(tenant)
    silver = tiers["silver"]
    response = logged_in.post(url(Tier, "delete", silver.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not Tier.objects.filter(pk=silver.pk).exists()
    assert list(AuditEntry.objects.values_list("action", "actor", "target_id")) == [
        ("tier.deleted", "user:anna", str(silver.pk))
    ]


def test_deleting_a_ladder_with_rules_is_refused(logged_in, tenant):
    tier_type, _, _ = hotel_ladder(tenant)
    response = logged_in.post(url(TierType, "delete", tier_type.pk), {"post": "yes"})
    assert response.status_code == 302
    assert messages_of(response) == [
        "Cannot delete Hotel status: referenced by 1 promotion rule (hotel-gold-by-nights). Archive it instead."
    ]
    assert TierType.objects.filter(pk=tier_type.pk).exists()
    assert Tier.objects.count() == 4
    assert not AuditEntry.objects.exists()


# --- criteria as text ------------------------------------------------------------------------------
def test_criteria_textarea_round_trips(logged_in, tenant):
    _, _, rule = hotel_ladder(tenant)
    page = logged_in.get(url(PromotionRule, "change", rule.pk))
    form = page.context["adminform"].form
    assert form["criteria"].value() == "quantity:nights >= 25\nquantity:stays >= 15"
    assert "quantity:nights &gt;= 25\nquantity:stays &gt;= 15</textarea>" in page.content.decode()

    text = "spend >= 5000.50 window 365\nattribute:country in TH, SG\nattribute:vip = true"
    response = logged_in.post(url(PromotionRule, "change", rule.pk), rule_change_form(rule, criteria=text))
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.criteria == [
        {"metric": "spend", "operator": "gte", "value": "5000.5", "window_days": 365},
        {"metric": "attribute:country", "operator": "in", "value": ["TH", "SG"], "window_days": None},
        {"metric": "attribute:vip", "operator": "eq", "value": True, "window_days": None},
    ]
    again = logged_in.get(url(PromotionRule, "change", rule.pk)).context["adminform"].form
    assert again["criteria"].value() == "spend >= 5000.5 window 365\nattribute:country in TH, SG\nattribute:vip = True"
    assert audit_actions() == [("promotionrule.updated", "user:anna")]


@pytest.mark.parametrize(
    ("text", "errors"),
    [
        ("nights more than 25", ["Line 1: write 'metric operator value [window N]', e.g. 'quantity:nights >= 25'."]),
        ("quantity:nights >= lots", ["Criterion 1: value 'lots' for quantity:nights gte must be a number."]),
        ("tenure_days >= 30 window 90", ["Criterion 1: window_days does not apply to tenure_days (it has no window)."]),
        ("", ["This field is required."]),
    ],
    ids=["syntax", "value", "window", "empty"],
)
def test_bad_criteria_show_a_field_error_and_save_nothing(logged_in, tenant, text, errors):
    _, _, rule = hotel_ladder(tenant)
    original = rule.criteria
    response = logged_in.post(url(PromotionRule, "change", rule.pk), rule_change_form(rule, criteria=text, name="x"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"criteria": errors}
    rule.refresh_from_db()
    assert (rule.criteria, rule.name) == (original, "")
    assert not AuditEntry.objects.exists()
    assert rule.history.count() == 1


def test_promotion_rule_needs_a_target_of_its_tier_type(logged_in, tenant):
    tier_type, _, _ = hotel_ladder(tenant)
    _, other_tiers, _ = hotel_ladder(tenant, code="airline")
    response = logged_in.post(url(PromotionRule, "add"), rule_form(tier_type, other_tiers["gold"], code="x"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "target_tier": ["The target tier belongs to another tier type."]
    }
    assert not PromotionRule.objects.filter(code="x").exists()


# --- history and revert ----------------------------------------------------------------------------
def test_reverting_a_rule_restores_its_criteria_through_the_service(logged_in, tenant):
    _, _, rule = hotel_ladder(tenant)
    old_criteria = rule.criteria
    response = logged_in.post(
        url(PromotionRule, "change", rule.pk), rule_change_form(rule, criteria="quantity:nights >= 40")
    )
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.criteria == [{"metric": "quantity:nights", "operator": "gte", "value": 40, "window_days": None}]

    history = logged_in.get(url(PromotionRule, "history", rule.pk))
    assert history.status_code == 200
    first = rule.history.earliest()
    revert_url = url(PromotionRule, "simple_history", rule.pk, first.history_id)
    page = logged_in.get(revert_url)
    assert page.status_code == 200
    assert page.context["adminform"].form["criteria"].value() == "quantity:nights >= 25\nquantity:stays >= 15"

    response = logged_in.post(revert_url, rule_change_form(rule, name=""))
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.criteria == old_criteria
    revert_audit = AuditEntry.objects.order_by("id").last()
    assert (revert_audit.action, revert_audit.actor, revert_audit.target_id) == (
        "promotionrule.updated",
        "user:anna",
        str(rule.pk),
    )
    assert revert_audit.before["criteria"] == [
        {"metric": "quantity:nights", "operator": "gte", "value": 40, "window_days": None}
    ]
    assert revert_audit.after["criteria"] == old_criteria
    assert AuditEntry.objects.count() == 2
    assert rule.history.count() == 3
    assert rule.history.first().history_user.username == "anna"


def test_a_refused_revert_shows_the_error_and_changes_nothing(logged_in, tenant):
    _, tiers, rule = hotel_ladder(tenant)
    first = rule.history.earliest()
    PromotionRuleFactory(tier_type=rule.tier_type, target_tier=tiers["silver"], code="taken")
    response = logged_in.post(
        url(PromotionRule, "simple_history", rule.pk, first.history_id), rule_change_form(rule, code="taken")
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"code": ["Promotion rule 'taken' already exists."]}
    rule.refresh_from_db()
    assert rule.code == "hotel-gold-by-nights"
    assert not AuditEntry.objects.exists()


def test_reverting_a_tier_goes_through_the_service(logged_in, tenant):
    _, tiers, _ = hotel_ladder(tenant)
    gold = tiers["gold"]
    first = gold.history.earliest()
    gold.name = "Golden"
    gold.save()
    data = {
        "code": "gold",
        "name": "Gold",
        "rank": 3,
        "climbable": "on",
        "point_multiplier": "1.50",
        "available_from_0": "",
        "available_from_1": "",
        "available_until_0": "",
        "available_until_1": "",
        "description": "",
    }
    response = logged_in.post(url(Tier, "simple_history", gold.pk, first.history_id), data)
    assert response.status_code == 302
    gold.refresh_from_db()
    assert gold.name == "Gold"
    assert audit_actions() == [("tier.updated", "user:anna")]


def test_manual_tier_change_source_is_recorded_in_the_change_log(logged_in, tenant):
    _, tiers, _ = hotel_ladder(tenant)
    member = MemberFactory(tenant=tenant, external_id="u-42")
    change_member_tier(
        tenant=tenant,
        member=member,
        tier=tiers["gold"],
        reason="goodwill",
        actor="system",
        source=AssignmentSource.MANUAL,
    )
    page = logged_in.get(url(MemberTierChange, "changelist"))
    (change,) = page.context["cl"].result_list
    assert (change.member.external_id, change.to_tier.code, change.reason) == ("u-42", "gold", "goodwill")
