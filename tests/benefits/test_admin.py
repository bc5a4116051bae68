"""The benefits portal: every page renders for a tenant's staff, nothing of another tenant shows, and
every write goes through the services (audited, validated, refusals shown on the form)."""

import json
from datetime import UTC, datetime

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse

from audit.models import AuditEntry
from benefits import admin as benefits_admin
from benefits.models import (
    Benefit,
    CampaignBenefitMapping,
    EventCode,
    EventCodeRedemption,
    MemberBenefit,
    TierBenefitMapping,
)
from tests.factories import MemberFactory, TenantMembershipFactory, UserFactory, hotel_ladder

pytestmark = pytest.mark.django_db

BENEFIT_MODELS = [Benefit, CampaignBenefitMapping, EventCode, MemberBenefit, EventCodeRedemption]
SERVICE_MODELS = [Benefit, CampaignBenefitMapping, EventCode]
GRANTED = datetime(2026, 3, 4, 10, 30, tzinfo=UTC)
MAPPINGS = "tier_mappings"  # the prefix of the tier-mapping inline on the benefit page


@pytest.fixture
def staff(tenant):
    """A staff user of tenant acme with every permission of the benefits app."""
    user = UserFactory(username="anna")
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="benefits"))
    TenantMembershipFactory(user=user, tenant=tenant)
    return user


@pytest.fixture
def logged_in(client, staff):
    client.force_login(staff)
    return client


def url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def audit_actions(after: int = 0):
    """(action, actor) of the audit entries written after entry id ``after`` (the trail is append-only:
    tests mark where they start instead of deleting entries)."""
    return list(AuditEntry.objects.filter(id__gt=after).order_by("id").values_list("action", "actor"))


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def benefits_config(tenant, *, code="hotel"):
    """A ladder, two benefits and a template bundle of both, a tier and a campaign mapping, a grant, an
    event code and its redemption (no services: no audit rows)."""
    _, tiers, _ = hotel_ladder(tenant, code=code)
    late = Benefit.objects.create(tenant=tenant, code=f"{code}-late", name="Late checkout", retain_on_loss=True)
    drink = Benefit.objects.create(
        tenant=tenant, code=f"{code}-drink", name="Welcome drink", type="voucher", value={"count": 1}
    )
    bundle = Benefit.objects.create(tenant=tenant, code=f"{code}-pack", name="Arrival pack", is_template=True)
    bundle.components.set([late, drink])
    tier_mapping = TierBenefitMapping.objects.create(tenant=tenant, tier=tiers["gold"], benefit=late)
    campaign_mapping = CampaignBenefitMapping.objects.create(
        tenant=tenant,
        campaign_code="SPRING26",
        benefit=drink,
        criteria=[{"metric": "spend", "operator": "gte", "value": 100, "window_days": None}],
    )
    member = MemberFactory(tenant=tenant)
    grant = MemberBenefit.objects.create(
        tenant=tenant, member=member, benefit=late, source="tier", source_ref="gold", granted_at=GRANTED
    )
    event_code = EventCode.objects.create(
        tenant=tenant, code=f"{code.upper()}-VIP", action="promote_tier", tier=tiers["platinum"], redemptions=1
    )
    redemption = EventCodeRedemption.objects.create(
        tenant=tenant, event_code=event_code, member=member, at=GRANTED, result={"tier": "platinum"}
    )
    return {
        Benefit: late,
        CampaignBenefitMapping: campaign_mapping,
        EventCode: event_code,
        MemberBenefit: grant,
        EventCodeRedemption: redemption,
        TierBenefitMapping: tier_mapping,
        "drink": drink,
        "bundle": bundle,
        "tiers": tiers,
        "member": member,
    }


def mapping_rows(*rows, initial=0):
    """The tier-mapping inline's management form and rows: (tier, inheritable[, mapping pk[, delete]])."""
    data = {
        f"{MAPPINGS}-TOTAL_FORMS": len(rows),
        f"{MAPPINGS}-INITIAL_FORMS": initial,
        f"{MAPPINGS}-MIN_NUM_FORMS": 0,
        f"{MAPPINGS}-MAX_NUM_FORMS": 1000,
    }
    for index, (tier, inheritable, *rest) in enumerate(rows):
        prefix = f"{MAPPINGS}-{index}-"
        data[prefix + "id"] = rest[0] if rest else ""
        data[prefix + "tier"] = tier.pk
        if inheritable:
            data[prefix + "inheritable"] = "on"
        if len(rest) > 1 and rest[1]:
            data[prefix + "DELETE"] = "on"
    return data


def benefit_form(tenant, *, components=(), mappings=(), **overrides):
    data = {
        "tenant": tenant.pk,
        "code": "suite-upgrade",
        "name": "Suite upgrade",
        "type": "voucher",
        "value": '{"nights": 1}',
        "active": "on",
        "lifetime": "permanent",
        "duration_days": "",
        "valid_from_0": "",
        "valid_from_1": "",
        "valid_until_0": "",
        "valid_until_1": "",
        "criteria": "",
        "usage_limit": 2,
        "total_quantity": "",
        "exclusive_group": "",
        "priority": 0,
        "components": [b.pk for b in components],
        "description": "",
        **mapping_rows(*mappings),
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def benefit_change_form(benefit, *, mappings=None, **overrides):
    """The change page as shown: the stored values and mapping rows, with ``overrides``."""
    stored = mappings if mappings is not None else [(m.tier, m.inheritable, m.pk) for m in benefit.tier_mappings.all()]
    data = benefit_form(
        benefit.tenant,
        components=benefit.components.all(),
        code=benefit.code,
        name=benefit.name,
        type=benefit.type,
        value=json.dumps(benefit.value),
        active="on" if benefit.active else None,
        is_template="on" if benefit.is_template else None,
        retain_on_loss="on" if benefit.retain_on_loss else None,
        lifetime=benefit.lifetime,
        duration_days=benefit.duration_days or "",
        usage_limit=benefit.usage_limit or "",
        total_quantity=benefit.total_quantity or "",
        exclusive_group=benefit.exclusive_group,
        priority=benefit.priority,
        description=benefit.description,
    )
    data.update(mapping_rows(*stored, initial=sum(1 for row in stored if len(row) > 2 and row[2])))
    data.update(overrides)
    del data["tenant"]  # read-only once created
    return {k: v for k, v in data.items() if v is not None}


def event_code_form(tenant, **overrides):
    data = {
        "tenant": tenant.pk,
        "code": " welcome2026 ",
        "name": "Welcome",
        "active": "on",
        "action": "award_points",
        "tier": "",
        "benefit": "",
        "points": 500,
        "max_redemptions": 1000,
        "per_member_limit": 1,
        "valid_from_0": "2026-01-01",
        "valid_from_1": "00:00:00",
        "valid_until_0": "",
        "valid_until_1": "",
    }
    data.update(overrides)
    return data


def campaign_form(tenant, benefit, **overrides):
    data = {"tenant": tenant.pk, "campaign_code": "SUMMER26", "benefit": benefit.pk, "criteria": ""}
    data.update(overrides)
    return data


# --- pages render, scoped to the user's tenants ----------------------------------------------------
def test_benefits_admin_registers_exactly_these_models():
    ours = {m for m in admin.site._registry if m._meta.app_label == "benefits"}
    assert ours == set(BENEFIT_MODELS)
    assert TierBenefitMapping not in admin.site._registry  # an inline of the benefit page


@pytest.mark.parametrize("model", BENEFIT_MODELS, ids=lambda m: m.__name__)
def test_every_page_renders_for_tenant_staff(logged_in, tenant, model):
    config = benefits_config(tenant)
    obj = config[model]
    model_admin = admin.site._registry[model]
    assert logged_in.get(url(model, "changelist")).status_code == 200
    expected_add = 200 if model in SERVICE_MODELS else 403
    assert logged_in.get(url(model, "add")).status_code == expected_add
    assert logged_in.get(url(model, "change", obj.pk)).status_code == 200
    assert logged_in.get(url(model, "history", obj.pk)).status_code == 200
    if isinstance(model_admin, benefits_admin.ServiceAdmin):
        version = obj.history.first().history_id
        assert logged_in.get(url(model, "simple_history", obj.pk, version)).status_code == 200
        assert logged_in.get(url(model, "delete", obj.pk)).status_code == 200
    if model is Benefit:  # a bundle and its inline rows render too
        page = logged_in.get(url(Benefit, "change", config["bundle"].pk))
        assert page.status_code == 200
        page = logged_in.get(url(Benefit, "change", obj.pk))
        formset = page.context["inline_admin_formsets"][0].formset
        assert [f.instance for f in formset.forms] == [config[TierBenefitMapping]]


@pytest.mark.parametrize("model", BENEFIT_MODELS, ids=lambda m: m.__name__)
def test_another_tenants_objects_are_invisible(logged_in, tenant, other_tenant, model):
    mine = benefits_config(tenant)[model]
    theirs = benefits_config(other_tenant, code="airline")[model]

    changelist = logged_in.get(url(model, "changelist"))
    assert changelist.status_code == 200
    shown = list(changelist.context["cl"].queryset)
    assert theirs not in shown
    assert mine in shown
    assert {o.tenant_id for o in shown} == {tenant.pk}
    assert b"Globex" not in changelist.content  # not even in the tenant filter
    assert b"airline" not in changelist.content
    assert logged_in.get(url(model, "change", theirs.pk)).status_code == 302
    if isinstance(admin.site._registry[model], benefits_admin.ServiceAdmin):
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
    mine = benefits_config(tenant)
    benefits_config(other_tenant, code="airline")
    own_benefits = set(Benefit.objects.filter(tenant=tenant))
    page = logged_in.get(url(Benefit, "add"))
    form = page.context["adminform"].form
    assert list(form.fields["tenant"].queryset) == [tenant]
    assert set(form.fields["components"].queryset) == own_benefits
    inline_form = page.context["inline_admin_formsets"][0].formset.empty_form
    assert set(inline_form.fields["tier"].queryset) == set(mine["tiers"].values())
    # On a benefit's own page, it is not offered as one of its components.
    form = logged_in.get(url(Benefit, "change", mine["bundle"].pk)).context["adminform"].form
    assert set(form.fields["components"].queryset) == own_benefits - {mine["bundle"]}
    form = logged_in.get(url(EventCode, "add")).context["adminform"].form
    assert set(form.fields["tier"].queryset) == set(mine["tiers"].values())
    assert set(form.fields["benefit"].queryset) == own_benefits
    form = logged_in.get(url(CampaignBenefitMapping, "add")).context["adminform"].form
    assert set(form.fields["benefit"].queryset) == own_benefits


def test_bulk_delete_is_not_offered_but_the_template_copy_is(logged_in, tenant):
    benefits_config(tenant)
    for model in (CampaignBenefitMapping, EventCode):
        assert logged_in.get(url(model, "changelist")).context["action_form"] is None
    choices = logged_in.get(url(Benefit, "changelist")).context["action_form"].fields["action"].choices
    assert [name for name, _ in choices if name] == ["create_copy"]


# --- the catalog through the services ---------------------------------------------------------------
def test_creating_a_bundle_with_a_tier_mapping_through_the_admin(logged_in, tenant):
    config = benefits_config(tenant)
    late, drink, tiers = config[Benefit], config["drink"], config["tiers"]
    before = set(TierBenefitMapping.objects.values_list("pk", flat=True))
    data = benefit_form(tenant, components=[late, drink], mappings=[(tiers["silver"], True)], retain_on_loss="on")
    response = logged_in.post(url(Benefit, "add"), data)
    assert response.status_code == 302
    benefit = Benefit.objects.get(code="suite-upgrade")
    assert (benefit.tenant, benefit.name, benefit.type, benefit.value, benefit.usage_limit) == (
        tenant,
        "Suite upgrade",
        "voucher",
        {"nights": 1},
        2,
    )
    assert (benefit.lifetime, benefit.criteria, benefit.retain_on_loss, benefit.is_template) == (
        "permanent",
        [],
        True,
        False,
    )
    assert set(benefit.components.all()) == {late, drink}
    mapping = TierBenefitMapping.objects.exclude(pk__in=before).get()
    assert (mapping.tenant, mapping.tier, mapping.benefit, mapping.inheritable) == (
        tenant,
        tiers["silver"],
        benefit,
        True,
    )
    entries = list(AuditEntry.objects.order_by("id"))
    assert [(e.action, e.actor, e.target_id, e.tenant_id) for e in entries] == [
        ("benefit.created", "user:anna", str(benefit.pk), tenant.pk),
        ("tierbenefitmapping.created", "user:anna", str(mapping.pk), tenant.pk),
    ]
    assert sorted(entries[0].after["components"]) == sorted([late.pk, drink.pk])
    assert benefit.history.get().history_user.username == "anna"
    assert mapping.history.get().history_user.username == "anna"


def test_temporary_benefit_without_duration_is_refused_on_the_field(logged_in, tenant):
    _, tiers, _ = hotel_ladder(tenant)
    data = benefit_form(tenant, lifetime="temporary", mappings=[(tiers["gold"], True)])
    response = logged_in.post(url(Benefit, "add"), data)
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors == {"duration_days": ["A temporary benefit needs duration_days or valid_until."]}
    assert form["code"].value() == "suite-upgrade"  # the page shows what was typed
    assert not Benefit.objects.exists()
    assert not TierBenefitMapping.objects.exists()
    assert not AuditEntry.objects.exists()


def test_conditional_criteria_are_edited_as_text(logged_in, tenant):
    data = benefit_form(tenant, lifetime="conditional", criteria="spend >= 5000 window 365\nattribute:country in TH")
    assert logged_in.post(url(Benefit, "add"), data).status_code == 302
    benefit = Benefit.objects.get()
    assert benefit.criteria == [
        {"metric": "spend", "operator": "gte", "value": 5000, "window_days": 365},
        {"metric": "attribute:country", "operator": "in", "value": ["TH"], "window_days": None},
    ]
    form = logged_in.get(url(Benefit, "change", benefit.pk)).context["adminform"].form
    assert form["criteria"].value() == "spend >= 5000 window 365\nattribute:country in TH"
    assert audit_actions() == [("benefit.created", "user:anna")]


@pytest.mark.parametrize(
    ("lifetime", "text", "errors"),
    [
        ("conditional", "", ["At least one criterion is required."]),
        (
            "conditional",
            "nights more than 25",
            ["Line 1: write 'metric operator value [window N]', e.g. 'quantity:nights >= 25'."],
        ),
        ("permanent", "spend >= 100", ["Only a conditional benefit has criteria."]),
    ],
    ids=["conditional-empty", "syntax", "not-conditional"],
)
def test_bad_criteria_show_a_field_error_and_save_nothing(logged_in, tenant, lifetime, text, errors):
    response = logged_in.post(url(Benefit, "add"), benefit_form(tenant, lifetime=lifetime, criteria=text))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"criteria": errors}
    assert not Benefit.objects.exists()
    assert not AuditEntry.objects.exists()


def test_changing_only_the_components_is_one_audited_save(logged_in, tenant):
    config = benefits_config(tenant)
    bundle, late = config["bundle"], config[Benefit]
    data = benefit_change_form(bundle, components=[late.pk])
    assert logged_in.post(url(Benefit, "change", bundle.pk), data).status_code == 302
    assert list(bundle.components.all()) == [late]
    assert audit_actions() == [("benefit.updated", "user:anna")]
    entry = AuditEntry.objects.get()
    assert (sorted(entry.before["components"]), entry.after["components"]) == (
        sorted([late.pk, config["drink"].pk]),
        [late.pk],
    )
    # The same page saved again changes nothing and writes nothing.
    assert logged_in.post(url(Benefit, "change", bundle.pk), data).status_code == 302
    assert audit_actions() == [("benefit.updated", "user:anna")]


def test_saving_a_benefit_keeps_its_granted_count(logged_in, tenant):
    late = benefits_config(tenant)[Benefit]
    Benefit.objects.filter(pk=late.pk).update(granted_count=42)
    page = logged_in.get(url(Benefit, "change", late.pk))
    assert "granted_count" not in page.context["adminform"].form.fields  # shown, never edited
    assert "42" in page.content.decode()
    late.refresh_from_db()
    data = benefit_change_form(late, name="Late checkout (2 pm)")
    assert logged_in.post(url(Benefit, "change", late.pk), data).status_code == 302
    late.refresh_from_db()
    assert (late.name, late.granted_count) == ("Late checkout (2 pm)", 42)


def test_components_of_another_tenant_are_refused_by_the_service(client, tenant, other_tenant, staff):
    """A user of both tenants may see both catalogs, but a bundle's contents stay in its tenant."""
    TenantMembershipFactory(user=staff, tenant=other_tenant)
    client.force_login(staff)
    theirs = benefits_config(other_tenant, code="airline")
    response = client.post(url(Benefit, "add"), benefit_form(tenant, components=[theirs[Benefit]]))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"components": ["Benefits of another tenant."]}
    assert not Benefit.objects.filter(tenant=tenant).exists()
    assert not AuditEntry.objects.exists()


def test_a_tier_of_another_tenant_is_refused_on_its_row(client, tenant, other_tenant, staff):
    TenantMembershipFactory(user=staff, tenant=other_tenant)
    client.force_login(staff)
    theirs = benefits_config(other_tenant, code="airline")
    data = benefit_form(tenant, mappings=[(theirs["tiers"]["gold"], True)])
    response = client.post(url(Benefit, "add"), data)
    assert response.status_code == 200
    formset = response.context["inline_admin_formsets"][0].formset
    assert formset.forms[0].errors == {"__all__": ["Not a benefit of this tenant."]}
    assert b"Not a benefit of this tenant." in response.content
    assert not Benefit.objects.filter(tenant=tenant).exists()  # the whole save was rolled back
    assert not AuditEntry.objects.exists()


# --- tier mappings on the benefit page ---------------------------------------------------------------
def test_mapping_rows_are_changed_moved_and_removed_through_the_services(logged_in, tenant):
    config = benefits_config(tenant)
    late, tiers, gold_mapping = config[Benefit], config["tiers"], config[TierBenefitMapping]
    silver_mapping = TierBenefitMapping.objects.create(tenant=tenant, tier=tiers["silver"], benefit=late)
    # Gold no longer inherited, silver moved to platinum, a new member row.
    rows = [
        (tiers["gold"], False, gold_mapping.pk),
        (tiers["platinum"], True, silver_mapping.pk),
        (tiers["member"], True),
    ]
    data = benefit_change_form(late, mappings=rows)
    assert logged_in.post(url(Benefit, "change", late.pk), data).status_code == 302
    assert set(late.tier_mappings.values_list("tier__code", "inheritable")) == {
        ("gold", False),
        ("platinum", True),
        ("member", True),
    }
    assert audit_actions() == [
        ("tierbenefitmapping.deleted", "user:anna"),  # silver, moved: removed first
        ("tierbenefitmapping.updated", "user:anna"),  # gold
        ("tierbenefitmapping.created", "user:anna"),  # platinum
        ("tierbenefitmapping.created", "user:anna"),  # member
    ]
    assert not Benefit.objects.get(pk=late.pk).history.exclude(history_type="+").exists()  # the benefit: untouched

    # Removing a row unassigns it.
    mark = AuditEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0
    stored = [(m.tier, m.inheritable, m.pk, m.tier.code == "member") for m in late.tier_mappings.order_by("pk")]
    data = benefit_change_form(late, mappings=stored)
    assert logged_in.post(url(Benefit, "change", late.pk), data).status_code == 302
    assert set(late.tier_mappings.values_list("tier__code", flat=True)) == {"gold", "platinum"}
    assert audit_actions(after=mark) == [("tierbenefitmapping.deleted", "user:anna")]


def test_two_rows_that_swap_tiers_keep_both_mappings(logged_in, tenant):
    config = benefits_config(tenant)
    late, tiers, gold_mapping = config[Benefit], config["tiers"], config[TierBenefitMapping]
    silver_mapping = TierBenefitMapping.objects.create(
        tenant=tenant, tier=tiers["silver"], benefit=late, inheritable=False
    )
    rows = [(tiers["silver"], True, gold_mapping.pk), (tiers["gold"], False, silver_mapping.pk)]
    assert logged_in.post(url(Benefit, "change", late.pk), benefit_change_form(late, mappings=rows)).status_code == 302
    assert set(late.tier_mappings.values_list("tier__code", "inheritable")) == {("silver", True), ("gold", False)}


def test_the_same_tier_twice_is_refused_by_the_form(logged_in, tenant):
    _, tiers, _ = hotel_ladder(tenant)
    data = benefit_form(tenant, mappings=[(tiers["gold"], True), (tiers["gold"], False)])
    response = logged_in.post(url(Benefit, "add"), data)
    assert response.status_code == 200
    assert response.context["inline_admin_formsets"][0].formset.non_form_errors()
    assert not Benefit.objects.exists()
    assert not AuditEntry.objects.exists()


# --- create from template ---------------------------------------------------------------------------
def test_the_template_copy_action_creates_copies(logged_in, tenant):
    config = benefits_config(tenant)
    bundle, late = config["bundle"], config[Benefit]
    action = {"action": "create_copy", "_selected_action": [bundle.pk, late.pk]}
    response = logged_in.post(url(Benefit, "changelist"), action)
    assert response.status_code == 302
    copy = Benefit.objects.get(code="hotel-pack-copy")
    assert (copy.tenant, copy.name, copy.is_template) == (tenant, "Arrival pack", False)
    assert set(copy.components.all()) == {late, config["drink"]}
    assert messages_of(response) == [
        "Created hotel-pack-copy (from hotel-pack).",
        "Skipped hotel-late: not a template.",
    ]
    # Again: the next free code.
    logged_in.get(url(Benefit, "changelist"))  # shows (and so consumes) the messages above
    response = logged_in.post(url(Benefit, "changelist"), {"action": "create_copy", "_selected_action": [bundle.pk]})
    assert messages_of(response) == ["Created hotel-pack-copy-2 (from hotel-pack)."]
    assert Benefit.objects.filter(code="hotel-pack-copy-2", is_template=False).exists()
    entries = list(AuditEntry.objects.order_by("id"))
    assert [(e.action, e.actor) for e in entries] == [("benefit.created", "user:anna")] * 2
    assert entries[0].target_id == str(copy.pk)


# --- delete and revert --------------------------------------------------------------------------------
def test_deleting_a_benefit_a_tier_maps_keeps_it_and_says_why(logged_in, tenant):
    _, tiers, _ = hotel_ladder(tenant)
    late = Benefit.objects.create(tenant=tenant, code="late", name="Late checkout")
    TierBenefitMapping.objects.create(tenant=tenant, tier=tiers["gold"], benefit=late)
    assert logged_in.get(url(Benefit, "delete", late.pk)).status_code == 200
    response = logged_in.post(url(Benefit, "delete", late.pk), {"post": "yes"})
    assert response.status_code == 302
    assert response["Location"] == url(Benefit, "change", late.pk)
    assert messages_of(response) == ["Cannot delete Late checkout: mapped to 1 tier. Archive it instead."]
    assert Benefit.objects.filter(pk=late.pk).exists()
    assert not AuditEntry.objects.exists()


def test_deleting_an_unused_benefit_goes_through_the_service(logged_in, tenant):
    late = Benefit.objects.create(tenant=tenant, code="late", name="Late checkout")
    response = logged_in.post(url(Benefit, "delete", late.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not Benefit.objects.filter(pk=late.pk).exists()
    assert list(AuditEntry.objects.values_list("action", "actor", "target_id")) == [
        ("benefit.deleted", "user:anna", str(late.pk))
    ]


def test_reverting_a_benefit_goes_through_the_service(logged_in, tenant):
    assert logged_in.post(url(Benefit, "add"), benefit_form(tenant)).status_code == 302
    benefit = Benefit.objects.get()
    changed = benefit_change_form(benefit, name="Suite upgrade (2 nights)", value='{"nights": 2}', usage_limit="")
    assert logged_in.post(url(Benefit, "change", benefit.pk), changed).status_code == 302
    benefit.refresh_from_db()
    assert (benefit.name, benefit.value, benefit.usage_limit) == ("Suite upgrade (2 nights)", {"nights": 2}, None)

    first = benefit.history.earliest("history_date")
    revert_url = reverse("admin:benefits_benefit_simple_history", args=[benefit.pk, first.history_id])
    page = logged_in.get(revert_url)
    assert page.status_code == 200
    initial = page.context["adminform"].form.initial
    assert (initial["name"], initial["value"], initial["usage_limit"]) == ("Suite upgrade", {"nights": 1}, 2)
    reverted = benefit_change_form(benefit, name="Suite upgrade", value='{"nights": 1}', usage_limit=2)
    response = logged_in.post(revert_url, reverted)
    assert response.status_code == 302
    benefit.refresh_from_db()
    assert (benefit.name, benefit.value, benefit.usage_limit) == ("Suite upgrade", {"nights": 1}, 2)
    assert audit_actions() == [
        ("benefit.created", "user:anna"),
        ("benefit.updated", "user:anna"),
        ("benefit.updated", "user:anna"),  # the revert
    ]
    revert = AuditEntry.objects.order_by("id").last()
    assert (revert.before["usage_limit"], revert.after["usage_limit"]) == (None, 2)
    assert (revert.before["name"], revert.after["name"]) == ("Suite upgrade (2 nights)", "Suite upgrade")
    assert benefit.history.first().history_user.username == "anna"


# --- campaign mappings ----------------------------------------------------------------------------------
def test_campaign_mappings_through_the_services(logged_in, tenant):
    config = benefits_config(tenant)
    late, drink = config[Benefit], config["drink"]
    response = logged_in.post(url(CampaignBenefitMapping, "add"), campaign_form(tenant, late, criteria="spend >= 50"))
    assert response.status_code == 302
    mapping = CampaignBenefitMapping.objects.get(campaign_code="SUMMER26")
    assert (mapping.tenant, mapping.benefit, mapping.criteria) == (
        tenant,
        late,
        [{"metric": "spend", "operator": "gte", "value": 50, "window_days": None}],
    )
    page = logged_in.get(url(CampaignBenefitMapping, "change", mapping.pk))
    assert page.context["adminform"].form["criteria"].value() == "spend >= 50"

    # Criteria removed: the same row, updated.
    data = campaign_form(tenant, late)
    del data["tenant"]
    assert logged_in.post(url(CampaignBenefitMapping, "change", mapping.pk), data).status_code == 302
    mapping.refresh_from_db()
    assert mapping.criteria == []
    # Moved to another benefit: removed and mapped anew.
    data["benefit"] = drink.pk
    response = logged_in.post(url(CampaignBenefitMapping, "change", mapping.pk), data)
    assert response.status_code == 302
    assert not CampaignBenefitMapping.objects.filter(pk=mapping.pk).exists()
    moved = CampaignBenefitMapping.objects.get(campaign_code="SUMMER26")
    assert moved.benefit == drink
    # Onto a pair that is mapped already: refused on the field.
    data["campaign_code"] = "SPRING26"
    response = logged_in.post(url(CampaignBenefitMapping, "change", moved.pk), data)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "benefit": ["hotel-drink is already mapped to campaign SPRING26."]
    }
    assert CampaignBenefitMapping.objects.filter(pk=moved.pk, campaign_code="SUMMER26").exists()
    # Deleted through the service.
    assert logged_in.post(url(CampaignBenefitMapping, "delete", moved.pk), {"post": "yes"}).status_code == 302
    assert not CampaignBenefitMapping.objects.filter(pk=moved.pk).exists()
    assert audit_actions() == [
        ("campaignbenefitmapping.created", "user:anna"),
        ("campaignbenefitmapping.updated", "user:anna"),
        ("campaignbenefitmapping.deleted", "user:anna"),
        ("campaignbenefitmapping.created", "user:anna"),
        ("campaignbenefitmapping.deleted", "user:anna"),
    ]


# --- event codes ------------------------------------------------------------------------------------------
def test_creating_an_event_code_through_the_admin(logged_in, tenant):
    response = logged_in.post(url(EventCode, "add"), event_code_form(tenant))
    assert response.status_code == 302
    code = EventCode.objects.get()
    assert (code.tenant, code.code, code.action, code.points, code.max_redemptions, code.redemptions) == (
        tenant,
        "WELCOME2026",
        "award_points",
        500,
        1000,
        0,
    )
    assert code.valid_from == datetime(2026, 1, 1, tzinfo=UTC)
    assert list(AuditEntry.objects.values_list("action", "actor", "target_id")) == [
        ("eventcode.created", "user:anna", str(code.pk))
    ]
    page = logged_in.get(url(EventCode, "changelist"))
    assert "from 2026-01-01" in page.content.decode()


def test_an_event_code_without_what_its_action_needs_is_refused_on_the_fields(logged_in, tenant):
    benefit = Benefit.objects.create(tenant=tenant, code="late", name="Late checkout")
    data = event_code_form(tenant, action="promote_tier", benefit=benefit.pk)
    response = logged_in.post(url(EventCode, "add"), data)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "tier": ["Required for promote_tier."],
        "benefit": ["Not used by promote_tier; leave it empty."],
        "points": ["Not used by promote_tier; leave it empty."],
    }
    assert not EventCode.objects.exists()
    assert not AuditEntry.objects.exists()


def test_saving_an_event_code_keeps_its_redemption_count(logged_in, tenant):
    code = benefits_config(tenant)[EventCode]
    EventCode.objects.filter(pk=code.pk).update(redemptions=7)
    page = logged_in.get(url(EventCode, "change", code.pk))
    assert "redemptions" not in page.context["adminform"].form.fields
    assert "Redemption count" in page.content.decode()
    data = event_code_form(
        tenant, code=code.code, action="promote_tier", tier=code.tier_id, points="", max_redemptions=""
    )
    del data["tenant"]
    data["name"] = "VIP invitation"
    assert logged_in.post(url(EventCode, "change", code.pk), data).status_code == 302
    code.refresh_from_db()
    assert (code.name, code.redemptions, code.max_redemptions) == ("VIP invitation", 7, None)
    assert audit_actions() == [("eventcode.updated", "user:anna")]


def test_deleting_a_redeemed_event_code_is_refused(logged_in, tenant):
    code = benefits_config(tenant)[EventCode]
    response = logged_in.post(url(EventCode, "delete", code.pk), {"post": "yes"})
    assert response.status_code == 302
    assert messages_of(response) == ["Cannot delete HOTEL-VIP: redeemed 1 time. Archive it instead."]
    assert EventCode.objects.filter(pk=code.pk).exists()
    assert not AuditEntry.objects.exists()


# --- grants and redemptions (read-only) -------------------------------------------------------------------
def test_grants_are_read_only_and_searchable(logged_in, tenant):
    config = benefits_config(tenant)
    grant = config[MemberBenefit]
    other = MemberBenefit.objects.create(
        tenant=tenant,
        member=MemberFactory(tenant=tenant),
        benefit=config["drink"],
        source="event_code",
        status="used_up",
        granted_at=GRANTED,
    )
    page = logged_in.get(url(MemberBenefit, "change", grant.pk))
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert logged_in.post(url(MemberBenefit, "change", grant.pk), {"uses": 3}).status_code == 403
    assert logged_in.post(url(MemberBenefit, "delete", grant.pk), {"post": "yes"}).status_code == 403
    grant.refresh_from_db()
    assert grant.uses == 0
    changelist = url(MemberBenefit, "changelist")
    assert list(logged_in.get(changelist, {"q": config["member"].external_id}).context["cl"].queryset) == [grant]
    assert list(logged_in.get(changelist, {"q": "hotel-drink"}).context["cl"].queryset) == [other]
    assert list(logged_in.get(changelist, {"status__exact": "used_up"}).context["cl"].queryset) == [other]
    assert list(logged_in.get(changelist, {"source__exact": "tier"}).context["cl"].queryset) == [grant]


def test_redemptions_are_read_only_and_show_their_result(logged_in, tenant):
    redemption = benefits_config(tenant)[EventCodeRedemption]
    page = logged_in.get(url(EventCodeRedemption, "change", redemption.pk))
    assert page.status_code == 200
    assert "&quot;tier&quot;: &quot;platinum&quot;" in page.content.decode()
    assert b'name="_save"' not in page.content
    assert logged_in.post(url(EventCodeRedemption, "delete", redemption.pk), {"post": "yes"}).status_code == 403
    page = logged_in.get(url(EventCodeRedemption, "changelist"), {"q": "hotel-vip"})
    assert list(page.context["cl"].queryset) == [redemption]
