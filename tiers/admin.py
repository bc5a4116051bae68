"""The portal for tier programs: ladders (tier types) with their tiers, promotion rules, and the log of
members' tier changes.

Every save and delete goes through ``tiers.services`` (audited, validated like the API, bumping the
tenant's config version), including simple-history reverts, which call ``save_model``. A service that
refuses a save never becomes a 500: :class:`ServiceAdmin` rolls the whole save back and renders the
page again from the same POST, with the service's errors on the fields they name.
"""

from typing import Any

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from tenancy.admin import ReadOnlyAdminMixin, TenantScopedAdmin, TenantScopedMixin
from tenancy.service_admin import (
    REFUSALS,
    ServiceAdmin,
    ServiceErrors,
    ServiceFormSet,
    ServiceRefused,
    error_messages,
    unchanged,
    with_service_errors,
)
from tiers import services
from tiers.forms import PromotionRuleForm, TierForm
from tiers.models import MemberTierChange, PromotionRule, Tier, TierReview, TierType

# --- tier types and their tiers -------------------------------------------------------------------
TIER_FIELDS = ["code", "name", "rank", "is_default", "climbable", "immutable", "point_multiplier"]


class TierInline(TenantScopedMixin, admin.TabularInline):
    """The ladder's tiers, saved one by one through ``save_tier`` (see TierTypeAdmin.save_formset)."""

    model = Tier
    form = TierForm
    formset = ServiceFormSet
    fields = [*TIER_FIELDS, "available_from", "available_until"]
    extra = 0
    ordering = ["rank"]
    show_change_link = True

    def get_extra(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> int:
        return 0 if obj else 3

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        formset: Any = with_service_errors(super().get_formset(request, obj, **kwargs), request)
        # Removals are checked by delete_tier (which says why a tier is in use), not by the admin's
        # form-level PROTECT check.
        form = with_service_errors(formset.form, request)
        formset.form = type(form.__name__, (form,), {"hand_clean_DELETE": lambda self: None})
        return formset


@admin.register(TierType)
class TierTypeAdmin(ServiceAdmin):
    list_display = [
        "code",
        "name",
        "tenant",
        "mode",
        "qualification",
        "validity",
        "grace_days",
        "active",
        "tier_count",
    ]
    list_filter = ["mode", "qualification", "active"]
    search_fields = ["code", "name"]
    list_select_related = ["tenant"]
    inlines = [TierInline]
    fieldsets = [
        (None, {"fields": ["tenant", "code", "name", "active", "priority"]}),
        (
            "Qualification and movement (DOMAIN §3.1)",
            {
                "fields": [
                    "mode",
                    "qualification",
                    "window_days",
                    "validity",
                    "validity_days",
                    "grace_days",
                    "demotion_step",
                ]
            },
        ),
        ("Scope", {"fields": ["product", "partner"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(tier_count=Count("tiers", distinct=True))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["tenant"] if obj else []

    @admin.display(description="tiers", ordering="tier_count")
    def tier_count(self, obj: TierType) -> int:
        return obj.tier_count  # type: ignore[attr-defined]

    def save_service(self, request: HttpRequest, obj: TierType) -> None:
        services.save_tier_type(tenant=obj.tenant, tier_type=obj, actor=request.user)

    def delete_service(self, request: HttpRequest, obj: TierType) -> None:
        services.delete_tier_type(tenant=obj.tenant, tier_type=obj, actor=request.user)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        """Each tier through ``save_tier`` (the one marked default first, so "the first tier of an
        active tier type is its default" holds) and each removal through ``delete_tier``; every refusal
        is collected, and any of them rolls the whole save back."""
        if formset.model is not Tier:
            super().save_formset(request, form, formset, change)
            return
        tier_type: TierType = form.instance
        saved = formset.save(commit=False)  # fills formset.deleted_objects; deletes nothing yet
        prefix_of = {id(f.instance): f.prefix for f in formset.forms}
        errors: ServiceErrors = {}
        deleted_ids = [t.pk for t in formset.deleted_objects]
        was_default = set(Tier.objects.filter(pk__in=deleted_ids, is_default=True).values_list("pk", flat=True))

        def delete(tier: Tier) -> None:
            try:
                services.delete_tier(tenant=tier_type.tenant, tier=Tier.objects.get(pk=tier.pk), actor=request.user)
            except REFUSALS as exc:
                errors.setdefault(formset.prefix, {}).setdefault(None, []).extend(
                    f"{tier.code}: {m}" for msgs in error_messages(exc).values() for m in msgs
                )

        for tier in formset.deleted_objects:  # free ranks and codes first, except the old default
            if tier.pk not in was_default:
                delete(tier)
        for tier in sorted(saved, key=lambda t: not t.is_default):
            tier.tenant = tier_type.tenant
            if unchanged(tier):  # e.g. the old default row, already updated when the default moved
                continue
            tier._history_user = request.user
            try:
                services.save_tier(tenant=tier_type.tenant, tier=tier, actor=request.user)
            except REFUSALS as exc:
                errors[prefix_of[id(tier)]] = error_messages(exc)
        for tier in formset.deleted_objects:  # once another tier took over as the default
            if tier.pk in was_default:
                delete(tier)
        if errors:
            raise ServiceRefused(errors)


class TierAdmin(ServiceAdmin):
    """The tier page. Registered by ``benefits.admin`` (``TierWithBenefitsAdmin``), which adds the
    benefits the tier gives: composed there, above tiers, so this layer knows nothing of benefits."""

    form = TierForm
    list_display = [
        "tier_type",
        "rank",
        "code",
        "name",
        "is_default",
        "climbable",
        "immutable",
        "point_multiplier",
        "available_from",
        "available_until",
    ]
    list_display_links = ["code", "name"]
    list_filter = [("tier_type", admin.RelatedOnlyFieldListFilter), "climbable", "immutable", "is_default"]
    search_fields = ["code", "name", "tier_type__code"]
    list_select_related = ["tier_type"]
    ordering = ["tier_type__code", "rank"]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list:
        head = ["tenant", "tier_type"] if obj else ["tier_type"]
        return [
            (None, {"fields": [*head, *TIER_FIELDS]}),
            ("Time-bound tier", {"fields": ["available_from", "available_until"]}),
            (None, {"fields": ["description"]}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["tenant", "tier_type"] if obj else []

    def save_service(self, request: HttpRequest, obj: Tier) -> None:
        obj.tenant = obj.tier_type.tenant  # a tier type the user may see (scoped choices)
        services.save_tier(tenant=obj.tenant, tier=obj, actor=request.user)

    def delete_service(self, request: HttpRequest, obj: Tier) -> None:
        services.delete_tier(tenant=obj.tenant, tier=obj, actor=request.user)


# --- promotion rules ------------------------------------------------------------------------------
@admin.register(PromotionRule)
class PromotionRuleAdmin(ServiceAdmin):
    form = PromotionRuleForm
    list_display = [
        "code",
        "summary",
        "tier_type",
        "direction",
        "status",
        "priority",
        "effective_from",
        "effective_until",
    ]
    list_filter = [("tier_type", admin.RelatedOnlyFieldListFilter), "direction", "status"]
    search_fields = ["code", "name"]
    list_select_related = ["tier_type", "target_tier"]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list:
        head = ["tenant", "summary", "tier_type"] if obj else ["tier_type"]
        return [
            (None, {"fields": [*head, "code", "name", "direction", "target_tier", "status", "priority"]}),
            ("Criteria (DOMAIN §3.3)", {"fields": ["combinator", "criteria"]}),
            ("Effective", {"fields": ["effective_from", "effective_until", "description"]}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["tenant", "summary", "tier_type"] if obj else []

    @admin.display(description="rule")
    def summary(self, obj: PromotionRule) -> str:
        return obj.summary()

    def save_service(self, request: HttpRequest, obj: PromotionRule) -> None:
        obj.tenant = obj.tier_type.tenant  # a tier type the user may see (scoped choices)
        services.save_promotion_rule(tenant=obj.tenant, rule=obj, actor=request.user)

    def delete_service(self, request: HttpRequest, obj: PromotionRule) -> None:
        services.delete_promotion_rule(tenant=obj.tenant, rule=obj, actor=request.user)


# --- members' tier changes (read-only history) ----------------------------------------------------
@admin.register(MemberTierChange)
class MemberTierChangeAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    """Every tier change of every member, as written by the services; never edited."""

    list_display = ["at", "member", "tier_type", "from_tier", "to_tier", "source", "reason", "rule", "actor"]
    list_filter = ["source", ("tier_type", admin.RelatedOnlyFieldListFilter), "at"]
    search_fields = ["member__external_id", "reason", "actor", "event_ref", "correlation_id"]
    list_select_related = ["member", "tier_type", "from_tier__tier_type", "to_tier__tier_type", "rule"]
    date_hierarchy = "at"


@admin.register(TierReview)
class TierReviewAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    """Runs of the periodic review, one per tenant and local day (``manage.py review_tiers``)."""

    list_display = ["run_date", "tenant", "members_reviewed", "changes", "started_at", "finished_at"]
    date_hierarchy = "run_date"
