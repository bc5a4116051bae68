"""The portal for benefits: the catalog (with its tier mappings and bundle contents), campaign mappings,
event codes, and the read-only members' grants and code redemptions (DOMAIN §5, §6).

Every save and delete goes through ``benefits.services`` (audited, validated like the API, bumping the
tenant's config version), including simple-history reverts, which call ``save_model``. A service that
refuses a save never becomes a 500: :class:`ServiceAdmin` rolls the whole save back and renders the
page again from the same POST, with the service's errors on the fields they name.
"""

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.utils.html import format_html

from benefits import services
from benefits.models import (
    Benefit,
    CampaignBenefitMapping,
    EventCode,
    EventCodeRedemption,
    MemberBenefit,
    TierBenefitMapping,
)
from tenancy.admin import ReadOnlyAdminMixin, TenantScopedAdmin, TenantScopedMixin
from tenancy.service_admin import (
    REFUSALS,
    ServiceAdmin,
    ServiceErrors,
    ServiceForm,
    ServiceFormSet,
    ServiceRefused,
    error_messages,
    refused,
    unchanged,
    window_display,
    with_service_errors,
)
from tiers.admin import TierAdmin
from tiers.criteria import CriteriaError, format_criteria_text, parse_criteria_text, summarize_criterion
from tiers.models import Tier

CRITERIA_HELP = (
    "One criterion per line: <code>metric operator value [window days]</code>, e.g. "
    "<code>quantity:nights &gt;= 25</code>, <code>spend &gt;= 5000 window 365</code>, "
    "<code>attribute:country in TH, SG</code> (as in promotion rules)."
)


def _criteria_summary(criteria: Any) -> str:
    if not isinstance(criteria, list) or not criteria:
        return "—"
    try:
        return "; ".join(summarize_criterion(c) for c in criteria)
    except (KeyError, TypeError, AttributeError):  # stored JSON that is not criteria
        return json.dumps(criteria)


class CriteriaTextForm(ServiceForm):
    """Criteria as text, one per line, like the promotion-rule form (``tiers.forms.PromotionRuleForm``);
    empty = no criteria."""

    criteria = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60, "spellcheck": "false"}),
        help_text=CRITERIA_HELP,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stored = self.initial.get("criteria")
        if isinstance(stored, list):
            try:
                self.initial["criteria"] = format_criteria_text(stored)
            except (KeyError, TypeError, AttributeError):  # stored JSON that is not criteria: show it raw
                self.initial["criteria"] = json.dumps(stored)

    def clean_criteria(self) -> list[dict[str, Any]]:
        text = self.cleaned_data.get("criteria") or ""
        if not text.strip():
            return []
        try:
            return parse_criteria_text(text)
        except CriteriaError as exc:
            raise ValidationError(exc.messages) from exc

    def _post_clean(self) -> None:
        """Text that does not parse is the only criteria error shown: the model's own check then
        judges the criteria the text replaces (e.g. a new benefit's empty list), not what was typed."""
        typed = self.errors.get("criteria")  # the errors so far (this runs within full_clean)
        typed = typed.copy() if typed else None
        super()._post_clean()  # type: ignore[misc]
        if typed:
            self.errors["criteria"] = typed


# --- tier → benefit mappings (an inline here, and on the tier page) -------------------------------
def save_tier_benefit_mappings(request: HttpRequest, formset: Any) -> None:
    """Save a formset of tier → benefit mappings (on a benefit's page or a tier's) through the services:
    each removal through ``unassign_tier_benefit``, each new or changed row through
    ``assign_tier_benefit``. A row moved to another tier (or benefit) is a removal and a new mapping,
    and every removal comes first, so rows that swap tiers never meet. Every refusal is collected, and
    any of them rolls the whole save back (``ServiceRefused``)."""
    tenant = formset.instance.tenant
    formset.save(commit=False)  # fills new_objects, changed_objects, deleted_objects; saves nothing
    prefix_of = {id(f.instance): f.prefix for f in formset.forms}
    row_of = {id(f.instance): index for index, f in enumerate(formset.forms)}
    parent_field = formset.fk.name  # "benefit" on the benefit page, "tier" on the tier page
    changed = [mapping for mapping, _ in formset.changed_objects]
    stored = {
        m.pk: TierBenefitMapping.objects.select_related("tier__tier_type", "benefit").get(pk=m.pk)
        for m in [*formset.deleted_objects, *changed]
    }
    moved = [m for m in changed if (stored[m.pk].tier_id, stored[m.pk].benefit_id) != (m.tier_id, m.benefit_id)]
    errors: ServiceErrors = {}
    for mapping in sorted([*formset.deleted_objects, *moved], key=lambda m: row_of[id(m)]):
        try:
            services.unassign_tier_benefit(tenant=tenant, mapping=stored[mapping.pk], actor=request.user)
        except REFUSALS as exc:
            errors.setdefault(formset.prefix, {}).setdefault(None, []).extend(
                f"{stored[mapping.pk]}: {m}" for msgs in error_messages(exc).values() for m in msgs
            )
    for mapping in sorted([*formset.new_objects, *changed], key=lambda m: row_of[id(m)]):
        try:
            services.assign_tier_benefit(
                tenant=tenant,
                tier=mapping.tier,
                benefit=mapping.benefit,
                actor=request.user,
                inheritable=mapping.inheritable,
            )
        except REFUSALS as exc:  # the page's own object (a hidden field of the row) is no field to show it on
            errors[prefix_of[id(mapping)]] = {
                (None if field == parent_field else field): msgs for field, msgs in error_messages(exc).items()
            }
    if errors:
        raise ServiceRefused(errors)


class TierBenefitMappingInlineBase(TenantScopedMixin, admin.TabularInline):
    """Tier → benefit mappings, saved through the services by :func:`save_tier_benefit_mappings` (the
    page's ``save_formset`` calls it)."""

    model = TierBenefitMapping
    form = ServiceForm
    formset = ServiceFormSet
    extra = 0

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        formset: Any = with_service_errors(super().get_formset(request, obj, **kwargs), request)
        formset.form = with_service_errors(formset.form, request)
        return formset

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)  # scoped to the user's tenants
        if field is not None and db_field.name == "tier":
            field.queryset = field.queryset.select_related("tier_type").order_by("tier_type__code", "rank")
        return field


class TierBenefitMappingInline(TierBenefitMappingInlineBase):
    """On a benefit's page: the tiers that give it."""

    fk_name = "benefit"
    fields = ["tier", "inheritable"]
    verbose_name = "tier that gives this benefit"
    verbose_name_plural = "tiers that give this benefit (inheritable: also every higher-ranked tier)"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("tier__tier_type")


class TierBenefitsInline(TierBenefitMappingInlineBase):
    """On a tier's page (``tiers.admin.TierAdmin``): the benefits the tier gives."""

    fk_name = "tier"
    fields = ["benefit", "inheritable"]
    verbose_name = "benefit of this tier"
    verbose_name_plural = "benefits of this tier (inheritable: also every higher-ranked tier)"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("benefit")


# --- the catalog ----------------------------------------------------------------------------------
COMPONENTS = "components"  # many-to-many: set by save_benefit, never by the form


class BenefitForm(CriteriaTextForm):
    class Meta:
        model = Benefit
        fields = "__all__"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields.get(COMPONENTS)
        if field is not None and self.instance.pk is not None:  # a bundle never contains itself
            field.queryset = field.queryset.exclude(pk=self.instance.pk)  # type: ignore[attr-defined]


@admin.register(Tier)
class TierWithBenefitsAdmin(TierAdmin):
    """The tier page (``tiers.admin.TierAdmin``) with the benefits the tier gives, saved through
    ``assign_tier_benefit``/``unassign_tier_benefit``."""

    inlines = [TierBenefitsInline]

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is TierBenefitMapping:
            save_tier_benefit_mappings(request, formset)
        else:
            super().save_formset(request, form, formset, change)


@admin.register(Benefit)
class BenefitAdmin(ServiceAdmin):
    form = BenefitForm
    list_display = [
        "code",
        "name",
        "type",
        "lifetime",
        "exclusive_group",
        "priority",
        "usage_limit",
        "total_quantity",
        "granted_count",
        "is_template",
        "retain_on_loss",
        "active",
    ]
    list_filter = ["type", "lifetime", "is_template", "active"]
    search_fields = ["code", "name"]
    filter_horizontal = [COMPONENTS]
    inlines = [TierBenefitMappingInline]
    actions = ["create_copy"]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list:
        limits = ["usage_limit", "total_quantity", "granted_count"] if obj else ["usage_limit", "total_quantity"]
        return [
            (None, {"fields": ["tenant", "code", "name", "type", "value", "active", "is_template"]}),
            (
                "Lifetime (DOMAIN §5)",
                {"fields": ["lifetime", "duration_days", "valid_from", "valid_until", "criteria"]},
            ),
            ("Limits (empty = none)", {"fields": limits}),
            ("Exclusivity and tier loss", {"fields": ["exclusive_group", "priority", "retain_on_loss"]}),
            ("Bundle: the benefits it grants", {"fields": [COMPONENTS]}),
            (None, {"fields": ["description"]}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["tenant", "granted_count"] if obj else []

    def save_model(self, request: HttpRequest, obj: Benefit, form: Any, change: bool) -> None:
        """One ``save_benefit`` call saves the benefit and its bundle contents (one audit entry). The
        form's own many-to-many save (``save_related``, and simple-history's revert, which calls it
        directly) becomes a no-op, so the contents are never written around the service."""
        obj._components = list(form.cleaned_data[COMPONENTS]) if COMPONENTS in form.cleaned_data else None  # type: ignore[attr-defined]
        form.save_m2m = lambda: None
        if change and unchanged(obj) and not self._components_changed(obj):
            return
        obj._history_user = request.user  # type: ignore[attr-defined]
        try:
            self.save_service(request, obj)
        except REFUSALS as exc:
            raise refused(form.prefix, exc) from exc

    @staticmethod
    def _components_changed(obj: Benefit) -> bool:
        chosen = getattr(obj, "_components", None)
        return chosen is not None and {b.pk for b in chosen} != set(obj.components.values_list("pk", flat=True))

    def save_service(self, request: HttpRequest, obj: Benefit) -> None:
        services.save_benefit(
            tenant=obj.tenant, benefit=obj, actor=request.user, components=getattr(obj, "_components", None)
        )

    def delete_service(self, request: HttpRequest, obj: Benefit) -> None:
        services.delete_benefit(tenant=obj.tenant, benefit=obj, actor=request.user)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is TierBenefitMapping:
            save_tier_benefit_mappings(request, formset)
        else:
            super().save_formset(request, form, formset, change)

    # --- "Create a copy from this template" -------------------------------------------------------
    @admin.action(description="Create a copy from this template", permissions=["add"])
    def create_copy(self, request: HttpRequest, queryset: QuerySet) -> None:
        """``create_from_template`` for each selected template, coded ``<code>-copy`` (``-copy-2``, …
        when taken); the copy is not a template and can then be renamed and adjusted."""
        created, skipped = [], []
        for template in queryset.select_related("tenant").order_by("code"):
            if not template.is_template:
                skipped.append(template.code)
                continue
            try:
                copy = services.create_from_template(
                    tenant=template.tenant,
                    template=template,
                    code=self._copy_code(template),
                    name=template.name,
                    actor=request.user,
                )
            except REFUSALS as exc:
                text = " ".join(m for msgs in error_messages(exc).values() for m in msgs)
                self.message_user(request, f"{template.code} was not copied: {text}", messages.ERROR)
            else:
                created.append(f"{copy.code} (from {template.code})")
        if created:
            self.message_user(request, f"Created {', '.join(created)}.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"Skipped {', '.join(skipped)}: not a template.", messages.WARNING)

    @staticmethod
    def _copy_code(template: Benefit) -> str:
        """``<code>-copy``, or ``<code>-copy-2``, ``-copy-3``, … when taken (within the code's length)."""
        limit = Benefit._meta.get_field("code").max_length or 64
        number = 1
        while True:
            suffix = "-copy" if number == 1 else f"-copy-{number}"
            code = template.code[: limit - len(suffix)] + suffix
            if not Benefit.objects.filter(tenant=template.tenant, code=code).exists():
                return code
            number += 1


# --- campaign → benefit mappings ------------------------------------------------------------------
class CampaignBenefitMappingForm(CriteriaTextForm):
    class Meta:
        model = CampaignBenefitMapping
        fields = "__all__"


@admin.register(CampaignBenefitMapping)
class CampaignBenefitMappingAdmin(ServiceAdmin):
    form = CampaignBenefitMappingForm
    list_display = ["campaign_code", "benefit", "conditions", "created_at"]
    list_filter = ["campaign_code"]
    search_fields = ["campaign_code", "benefit__code", "benefit__name"]
    list_select_related = ["benefit"]
    fields = ["tenant", "campaign_code", "benefit", "criteria"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["tenant"] if obj else []

    @admin.display(description="criteria")
    def conditions(self, obj: CampaignBenefitMapping) -> str:
        return _criteria_summary(obj.criteria) if obj.criteria else "any event of the campaign"

    def save_service(self, request: HttpRequest, obj: CampaignBenefitMapping) -> None:
        """``assign_campaign_benefit`` saves its own row, found by (campaign, benefit): a mapping moved
        to another campaign or benefit is removed (``unassign_campaign_benefit``) and mapped anew, unless
        that pair is mapped already."""
        stored = CampaignBenefitMapping.objects.filter(pk=obj.pk).first() if obj.pk else None
        if stored is not None and (stored.campaign_code, stored.benefit_id) != (obj.campaign_code, obj.benefit_id):
            pair = CampaignBenefitMapping.objects.filter(
                tenant=obj.tenant, campaign_code=obj.campaign_code, benefit=obj.benefit_id
            )
            if pair.exists():
                raise ValidationError(
                    {"benefit": [f"{obj.benefit.code} is already mapped to campaign {obj.campaign_code}."]}
                )
            services.unassign_campaign_benefit(tenant=obj.tenant, mapping=stored, actor=request.user)
        mapping = services.assign_campaign_benefit(
            tenant=obj.tenant,
            campaign_code=obj.campaign_code,
            benefit=obj.benefit,
            actor=request.user,
            criteria=obj.criteria,
        )
        obj.pk, obj.created_at = mapping.pk, mapping.created_at  # the service saved its own instance
        obj._state.adding = False

    def delete_service(self, request: HttpRequest, obj: CampaignBenefitMapping) -> None:
        services.unassign_campaign_benefit(tenant=obj.tenant, mapping=obj, actor=request.user)


# --- event codes ----------------------------------------------------------------------------------
RECENT_REDEMPTIONS = 20


class RecentRedemptionsFormSet(BaseInlineFormSet):
    """Only the latest redemptions: a popular code has thousands."""

    def get_queryset(self) -> QuerySet:
        if not hasattr(self, "_recent"):
            self._recent = super().get_queryset()[:RECENT_REDEMPTIONS]
        return self._recent


class RecentRedemptionsInline(ReadOnlyAdminMixin, TenantScopedMixin, admin.TabularInline):
    """On an event code's page: its latest redemptions, read-only (written only by the redeeming
    service; all of them are under "Event code redemptions")."""

    model = EventCodeRedemption
    fk_name = "event_code"
    formset = RecentRedemptionsFormSet
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ["at", "member", "outcome"]
    readonly_fields = ["at", "member", "outcome"]
    verbose_name = "redemption"
    verbose_name_plural = f"recent redemptions (latest {RECENT_REDEMPTIONS}, newest first)"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("member").order_by("-at", "-id")

    @admin.display(description="result")
    def outcome(self, obj: EventCodeRedemption) -> str:
        return json.dumps(obj.result, default=str, sort_keys=True)


@admin.register(EventCode)
class EventCodeAdmin(ServiceAdmin):
    list_display = [
        "code",
        "action",
        "tier",
        "benefit",
        "points",
        "max_redemptions",
        "per_member_limit",
        "redemption_count",
        "window",
        "active",
    ]
    list_filter = ["action", "active"]
    search_fields = ["code"]
    list_select_related = ["tier__tier_type", "benefit"]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list:
        limits = ["max_redemptions", "per_member_limit", *(["redemption_count"] if obj else [])]
        return [
            (None, {"fields": ["tenant", "code", "name", "active"]}),
            ("Action (DOMAIN §6): fill only the field it needs", {"fields": ["action", "tier", "benefit", "points"]}),
            ("Limits", {"fields": limits}),
            ("Valid (empty = always)", {"fields": ["valid_from", "valid_until"]}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["tenant", "redemption_count"] if obj else []

    def get_inlines(self, request: HttpRequest, obj: Any) -> list:
        """The recent redemptions are shown, never posted: a save (POST) carries no formset for them."""
        return [RecentRedemptionsInline] if obj is not None and request.method != "POST" else []

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)  # scoped to the user's tenants
        if field is not None and db_field.name == "tier":
            field.queryset = field.queryset.select_related("tier_type").order_by("tier_type__code", "rank")
        return field

    @admin.display(description="redemption count", ordering="redemptions")
    def redemption_count(self, obj: EventCode) -> int:
        return obj.redemptions

    @admin.display(description="window", ordering="valid_from")
    def window(self, obj: EventCode) -> str:
        return window_display(obj.valid_from, obj.valid_until)

    def save_service(self, request: HttpRequest, obj: EventCode) -> None:
        services.save_event_code(tenant=obj.tenant, event_code=obj, actor=request.user)

    def delete_service(self, request: HttpRequest, obj: EventCode) -> None:
        services.delete_event_code(tenant=obj.tenant, event_code=obj, actor=request.user)


# --- members' grants and code redemptions (read-only) ---------------------------------------------
@admin.register(MemberBenefit)
class MemberBenefitAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    """Every grant of a benefit to a member, as written by the services; never edited."""

    list_display = ["member", "benefit", "source", "source_ref", "status", "granted_at", "expires_at", "uses"]
    list_filter = ["status", "source"]
    search_fields = ["member__external_id", "benefit__code"]
    list_select_related = ["member", "benefit"]
    date_hierarchy = "granted_at"


@admin.register(EventCodeRedemption)
class EventCodeRedemptionAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    """Every redemption of an event code, as written by the redeeming service; never edited."""

    list_display = ["at", "event_code", "member"]
    search_fields = ["event_code__code", "member__external_id"]
    list_select_related = ["event_code", "member"]
    date_hierarchy = "at"
    readonly_fields = ["pretty_result"]
    fields = ["tenant", "event_code", "member", "at", "pretty_result"]

    @admin.display(description="result")
    def pretty_result(self, obj: EventCodeRedemption) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.result, indent=2, default=str))
