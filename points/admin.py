"""The portal for points: conversion rules, campaign modifiers, the tenant's point policy, and the
read-only ledger of point transactions (DOMAIN §4).

Every save and delete goes through ``points.services`` (audited, validated like the API, bumping the
tenant's config version), including simple-history reverts, which call ``save_model``. A service that
refuses a save never becomes a 500: :class:`ServiceAdmin` rolls the whole save back and renders the
page again from the same POST, with the service's errors on the fields they name. Cap buckets
(``PointBucket``) are internal counters and have no page.
"""

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from config.errors import DomainError
from members.models import EVENT_TYPES
from points import services
from points.models import PointConversionRule, PointModifier, PointPolicy, PointTransaction
from tenancy.admin import ReadOnlyAdminMixin, TenantScopedAdmin
from tenancy.selectors import tenants_for_user
from tenancy.service_admin import (
    REFUSALS,
    ServiceAdmin,
    ServiceForm,
    add_errors,
    error_messages,
    refused,
    unchanged,
    window_display,
)

EVENT_TYPE_CHOICES = [(t, t) for t in EVENT_TYPES]
WEEKDAY_CHOICES = list(enumerate(["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]))
CAP_FIELDS = ["cap_per_event", "cap_per_day", "cap_per_week", "cap_per_month"]


def _event_types_field(help_text: str) -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(
        choices=EVENT_TYPE_CHOICES, required=False, widget=forms.CheckboxSelectMultiple, help_text=help_text
    )


def _number(value: Any) -> str:
    """A decimal (or a decimal string, as breakdowns store them) without trailing zeros ('120', '1.5')."""
    if isinstance(value, str):
        try:
            value = Decimal(value)
        except ArithmeticError:
            return value
    if isinstance(value, Decimal) and value.is_finite():
        value = value.normalize()
        return f"{value:,f}" if value == value.to_integral_value() else format(value, "f")
    return str(value)


def _is_one(value: Any) -> bool:
    try:
        return Decimal(str(value)) == 1
    except ArithmeticError:
        return False


# --- conversion rules -----------------------------------------------------------------------------
class PointConversionRuleForm(ServiceForm):
    """Event types as checkboxes instead of raw JSON (none ticked = every event type)."""

    event_types = _event_types_field("None ticked = every event type.")

    class Meta:
        model = PointConversionRule
        fields = "__all__"


@admin.register(PointConversionRule)
class PointConversionRuleAdmin(ServiceAdmin):
    form = PointConversionRuleForm
    list_display = ["code", "summary", "group", "priority", "status", "window"]
    list_filter = ["status", "base", "group", ("tier_type", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["code", "name"]
    list_select_related = ["tenant"]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list:
        head = ["tenant", "summary"] if obj else ["tenant"]
        return [
            (None, {"fields": [*head, "code", "name", "status"]}),
            (
                "Matching (DOMAIN §4.1)",
                {
                    "fields": [
                        "event_types",
                        "product",
                        "partner",
                        "source",
                        "channel",
                        "min_amount",
                        "effective_from",
                        "effective_until",
                    ]
                },
            ),
            (
                "Earning",
                {
                    "fields": [
                        "base",
                        "unit_amount",
                        "points_per_unit",
                        "quantity_name",
                        "tier_type",
                        "group",
                        "priority",
                        "rounding",
                    ]
                },
            ),
            ("Caps (empty = no cap)", {"fields": CAP_FIELDS}),
            (None, {"fields": ["description"]}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["tenant", "summary"] if obj else []

    @admin.display(description="rule")
    def summary(self, obj: PointConversionRule) -> str:
        return obj.summary()

    @admin.display(description="effective", ordering="effective_from")
    def window(self, obj: PointConversionRule) -> str:
        return window_display(obj.effective_from, obj.effective_until)

    def save_service(self, request: HttpRequest, obj: PointConversionRule) -> None:
        services.save_conversion_rule(tenant=obj.tenant, rule=obj, actor=request.user)

    def delete_service(self, request: HttpRequest, obj: PointConversionRule) -> None:
        services.delete_conversion_rule(tenant=obj.tenant, rule=obj, actor=request.user)


# --- modifiers ------------------------------------------------------------------------------------
SCOPE_FIELDS = ("rules", "tiers")  # many-to-many: set by save_modifier, never by the form


class PointModifierForm(ServiceForm):
    """Weekdays and event types as checkboxes instead of raw JSON."""

    days_of_week = forms.TypedMultipleChoiceField(
        choices=WEEKDAY_CHOICES,
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked = every day.",
    )
    event_types = _event_types_field("None ticked = every event type.")

    class Meta:
        model = PointModifier
        fields = "__all__"


@admin.register(PointModifier)
class PointModifierAdmin(ServiceAdmin):
    form = PointModifierForm
    list_display = [
        "code",
        "multiplier",
        "bonus_points",
        "window",
        "exclusive",
        "campaign_total",
        "pool_used",
        "status",
    ]
    list_filter = ["status", "exclusive"]
    search_fields = ["code", "name", "campaign_code"]
    list_select_related = ["tenant"]
    filter_horizontal = list(SCOPE_FIELDS)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list:
        return [
            (None, {"fields": ["tenant", "code", "name", "status", "campaign_code"]}),
            (
                "Effect (DOMAIN §4.2)",
                {"fields": ["multiplier", "bonus_points", "exclusive", "campaign_total", "pool_used"]},
            ),
            ("When", {"fields": ["starts_at", "ends_at", "days_of_week"]}),
            ("Scope (empty = any)", {"fields": ["event_types", "rules", "tiers", "product", "partner"]}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["tenant", "pool_used"] if obj else ["pool_used"]

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_manytomany(db_field, request, **kwargs)  # scoped to the user's tenants
        if field is not None and db_field.name == "tiers":
            field.queryset = field.queryset.select_related("tier_type").order_by("tier_type__code", "rank")
        return field

    @admin.display(description="window", ordering="starts_at")
    def window(self, obj: PointModifier) -> str:
        return window_display(obj.starts_at, obj.ends_at)

    def save_model(self, request: HttpRequest, obj: PointModifier, form: Any, change: bool) -> None:
        """One ``save_modifier`` call saves the modifier and its scope (one audit entry). The form's own
        many-to-many save (``save_related``, and simple-history's revert, which calls it directly)
        becomes a no-op, so the scope is never written around the service."""
        obj._scope = {name: list(form.cleaned_data[name]) for name in SCOPE_FIELDS if name in form.cleaned_data}  # type: ignore[attr-defined]
        form.save_m2m = lambda: None
        if change and unchanged(obj) and not self._scope_changed(obj):
            return
        obj._history_user = request.user  # type: ignore[attr-defined]
        try:
            self.save_service(request, obj)
        except REFUSALS as exc:
            raise refused(form.prefix, exc) from exc

    @staticmethod
    def _scope_changed(obj: PointModifier) -> bool:
        scope = getattr(obj, "_scope", {})
        return any(
            {o.pk for o in chosen} != set(getattr(obj, name).values_list("pk", flat=True))
            for name, chosen in scope.items()
        )

    def save_service(self, request: HttpRequest, obj: PointModifier) -> None:
        with transaction.atomic():
            if obj.pk is not None:
                # pool_used grows with every award (F() updates): keep the stored count, not the one the
                # form was built from, and hold the row until this save commits.
                obj.pool_used = (
                    PointModifier.objects.select_for_update().values_list("pool_used", flat=True).get(pk=obj.pk)
                )
            services.save_modifier(tenant=obj.tenant, modifier=obj, actor=request.user, **getattr(obj, "_scope", {}))

    def delete_service(self, request: HttpRequest, obj: PointModifier) -> None:
        services.delete_modifier(tenant=obj.tenant, modifier=obj, actor=request.user)


# --- the tenant's point policy --------------------------------------------------------------------
POLICY_FIELDS = ["welcome_points", *CAP_FIELDS]


@admin.register(PointPolicy)
class PointPolicyAdmin(ServiceAdmin):
    """One per tenant (welcome points and global caps). Never deleted: a tenant without one stored has
    all the defaults (no caps, no welcome points)."""

    list_display = ["tenant", "welcome_points", *CAP_FIELDS, "updated_at"]
    list_select_related = ["tenant"]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list:
        return [
            (None, {"fields": ["tenant", "welcome_points"]}),
            ("Global caps per member (empty = no cap)", {"fields": CAP_FIELDS}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["tenant"] if obj else []

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)  # scoped to the user's tenants
        if field is not None and db_field.name == "tenant":
            field.queryset = field.queryset.filter(point_policy__isnull=True)
        return field

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Only while one of the user's tenants has no policy stored yet."""
        return (
            super().has_add_permission(request)
            and tenants_for_user(request.user).filter(point_policy__isnull=True).exists()
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_service(self, request: HttpRequest, obj: PointPolicy) -> None:
        stored = PointPolicy.objects.filter(pk=obj.pk).first() if obj.pk else None
        changes = {
            field: getattr(obj, field)
            for field in POLICY_FIELDS
            if stored is None or getattr(stored, field) != getattr(obj, field)
        }
        policy = services.save_point_policy(tenant=obj.tenant, changes=changes, actor=request.user)
        obj.pk, obj.updated_at = policy.pk, policy.updated_at  # the service saved its own instance
        obj._state.adding = False


# --- the ledger (read-only) -----------------------------------------------------------------------
class ReverseTransactionForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=1000,
        help_text="Required; recorded in the audit trail and the points.reverted message.",
    )


@admin.register(PointTransaction)
class PointTransactionAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    """Every entry of every member's point ledger, as written by the services; never edited."""

    list_display = ["occurred_at", "member", "kind", "rule", "points", "uncapped", "capped_by", "sync_status"]
    list_filter = ["kind", "sync_status"]
    search_fields = ["member__external_id"]
    list_select_related = ["member", "rule"]
    date_hierarchy = "occurred_at"
    readonly_fields = ["breakdown"]
    fields = [
        "tenant",
        "member",
        "kind",
        "occurred_at",
        "event",
        "rule",
        "reversal_of",
        "breakdown",
        "base",
        "tier_multiplier",
        "uncapped",
        "points",
        "capped_by",
        "sync_status",
        "correlation_id",
        "created_at",
    ]

    change_form_template = "admin/points/pointtransaction/change_form.html"
    reverse_template = "admin/points/pointtransaction/reverse.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("member", "rule")

    # --- "Reverse…": an operator's rollback of one transaction (points.services) ------------------------
    def get_urls(self) -> list:
        info = self.opts.app_label, self.opts.model_name
        view = self.admin_site.admin_view(self.reverse_view)
        return [path("<path:object_id>/reverse/", view, name="{}_{}_reverse".format(*info)), *super().get_urls()]

    def _may_reverse(self, request: HttpRequest) -> bool:
        return request.user.has_perm("points.change_pointtransaction") or request.user.is_superuser

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        tx = self.get_object(request, unquote(object_id))
        reversible = tx is not None and self._may_reverse(request) and services.reversible_points(tx) > 0
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), "can_reverse": reversible})

    def reverse_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET: what would be reversed and a reason; POST: ``rollback_point_transaction`` (a refusal, such
        as an already reversed transaction, shows on the form), then the reversal's page."""
        tx = self.get_object(request, unquote(object_id))
        if tx is None:  # not found, or another tenant's
            raise Http404
        if not self._may_reverse(request):
            raise PermissionDenied
        form = ReverseTransactionForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                reversal = services.rollback_point_transaction(
                    tenant=tx.tenant, tx=tx, actor=request.user, reason=form.cleaned_data["reason"]
                )
            except DomainError as exc:
                add_errors(form, error_messages(exc))
            else:
                self.message_user(
                    request, f"{tx.member.external_id}: {-reversal.points:,} points reversed.", messages.SUCCESS
                )
                url = reverse("admin:points_pointtransaction_change", args=[quote(reversal.pk)])
                return HttpResponseRedirect(url)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Reverse points: {tx.member.external_id}",
            "subtitle": None,
            "opts": self.opts,
            "original": tx,
            "left": services.reversible_points(tx),
            "form": form,
            "has_view_permission": True,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.reverse_template, context)

    @admin.display(description="breakdown")
    def breakdown(self, obj: PointTransaction) -> str:
        """'120 base × 1.5 tier × 2 (double-nights) + 50 bonus (double-nights) = 410; 300 after the cap
        (rule:day)', then one line per modifier that applied."""
        modifiers = [m for m in obj.modifiers if isinstance(m, dict)] if isinstance(obj.modifiers, list) else []
        terms = [f"{_number(obj.base)} base", f"× {_number(obj.tier_multiplier)} tier"]
        terms += [
            f"× {_number(m.get('multiplier'))} ({m.get('code')})" for m in modifiers if not _is_one(m.get("multiplier"))
        ]
        terms += [f"+ {m.get('bonus_points')} bonus ({m.get('code')})" for m in modifiers if m.get("bonus_points")]
        line = f"{' '.join(terms)} = {obj.uncapped:,}"
        if obj.capped_by:
            line += f"; {obj.points:,} after the cap ({obj.capped_by})"
        rows = format_html_join(
            "",
            "<li>{}: × {}, + {} bonus points</li>",
            ((m.get("code"), _number(m.get("multiplier")), m.get("bonus_points")) for m in modifiers),
        )
        if not modifiers:
            return format_html("<p>{}</p><p>No modifiers applied.</p>", line)
        return format_html("<p>{}</p><ul>{}</ul>", line, rows)
