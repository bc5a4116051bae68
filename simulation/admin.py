"""The portal for scenarios: plan a set of draft changes, then publish it (DOMAIN §9).

A scenario's page lists the tenant's draft rules and modifiers it may include, the active ones it may
exclude, and its tier multiplier overrides. The whole page is saved by one ``save_scenario`` call (the
scenario, its choices and overrides, audited, with a new fingerprint); a refusal shows on the fields it
names. "Publish…" asks for confirmation, showing what will change, then calls ``publish_scenario``. A
published scenario is a record: it can be read and deleted, not changed.

The change page's ``object-tools`` block ``scenario_tools`` holds "Validate" (``simulation.admin_warnings``)
and "Run simulation" (``simulation.admin_runs.ScenarioRunMixin``: its form shows above the page's form),
and ``scenario_notes`` (above the form) what the page should say.
"""

from collections.abc import Sequence
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from config.errors import DomainError
from simulation.admin_runs import ScenarioRunMixin
from simulation.models import Scenario, ScenarioTierOverride
from simulation.scenarios import (
    KINDS,
    TIERS,
    delete_scenario,
    publish_scenario,
    save_scenario,
    stale_objects,
)
from simulation.selectors import SCENARIO_RELATIONS
from tenancy.admin import TenantScopedAdmin, TenantScopedMixin
from tenancy.service_admin import (
    REFUSALS,
    ServiceAdminMixin,
    ServiceErrors,
    ServiceForm,
    ServiceFormSet,
    ServiceRefused,
    error_messages,
    with_service_errors,
)

CHOICE_FIELDS = [name for kind in KINDS for name in (kind.include, kind.exclude)]
WANTED = {**{k.include: "draft" for k in KINDS}, **{k.exclude: "active" for k in KINDS}}
FIELD_OF = {f"{k.field}.{side}": getattr(k, side) for k in KINDS for side in ("include", "exclude")}


class ScenarioForm(ServiceForm):
    """The choices offer the tenant's drafts (include) and active objects (exclude), plus whatever the
    scenario already names (so a choice that went stale shows, and the service says why)."""

    class Meta:
        model = Scenario
        fields = ["tenant", "code", "name", *CHOICE_FIELDS]
        help_texts = {
            "include_promotion_rules": "Draft promotion rules the scenario makes active.",
            "exclude_promotion_rules": "Active promotion rules the scenario archives.",
            "include_point_rules": "Draft point conversion rules the scenario makes active.",
            "exclude_point_rules": "Active point conversion rules the scenario archives.",
            "include_modifiers": "Draft point modifiers the scenario makes active.",
            "exclude_modifiers": "Active point modifiers the scenario archives.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        tenant_id = self.instance.tenant_id if self.instance.pk else None
        for name in CHOICE_FIELDS:
            field = self.fields.get(name)
            if not isinstance(field, forms.ModelMultipleChoiceField) or field.queryset is None:  # read-only here
                continue
            current = list(getattr(self.instance, name).values_list("pk", flat=True)) if self.instance.pk else []
            queryset = field.queryset.filter(Q(status=WANTED[name]) | Q(pk__in=current))
            if tenant_id is not None:
                queryset = queryset.filter(tenant_id=tenant_id)
            field.queryset = queryset.order_by("code")


class ScenarioTierOverrideInline(TenantScopedMixin, admin.TabularInline):
    """Tier point multipliers as the scenario would have them (saved with the scenario)."""

    model = ScenarioTierOverride
    form = ServiceForm
    formset = ServiceFormSet
    fields = ["tier", "point_multiplier"]
    extra = 0
    tenant_field = "scenario__tenant"
    verbose_name = "tier multiplier override"

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        formset: Any = with_service_errors(super().get_formset(request, obj, **kwargs), request)
        formset.form = with_service_errors(formset.form, request)
        tiers = formset.form.base_fields["tier"]
        tiers.queryset = tiers.queryset.select_related("tier_type").order_by("tier_type__code", "rank")
        if obj is not None:
            tiers.queryset = tiers.queryset.filter(tenant_id=obj.tenant_id)
        return formset

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return (obj is None or obj.published_at is None) and super().has_change_permission(request, obj)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return (obj is None or obj.published_at is None) and super().has_add_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return (obj is None or obj.published_at is None) and super().has_delete_permission(request, obj)


@admin.register(Scenario)
class ScenarioAdmin(ScenarioRunMixin, ServiceAdminMixin, TenantScopedAdmin):
    form = ScenarioForm
    change_form_template = "admin/simulation/scenario/change_form.html"
    publish_template = "admin/simulation/scenario/publish.html"
    list_display = ["code", "name", "tenant", "included", "excluded", "overrides", "published_at", "updated_at"]
    list_filter = [("published_at", admin.EmptyFieldListFilter)]
    search_fields = ["code", "name"]
    list_select_related = ["tenant"]
    filter_horizontal = CHOICE_FIELDS
    inlines = [ScenarioTierOverrideInline]
    actions = ["publish_selected"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        counts = {f"n_{name}": Count(name, distinct=True) for name in [*CHOICE_FIELDS, "tier_overrides"]}
        return super().get_queryset(request).annotate(**counts)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list:
        sections: list = [(None, {"fields": ["tenant", "code", "name", "created_by", "published_at"]})]
        for kind in KINDS:
            sections.append((f"{kind.noun.capitalize()}s", {"fields": [kind.include, kind.exclude]}))
        return sections

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fixed = ["created_by", "published_at"]
        return [*fixed, "tenant"] if obj else fixed

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """A published scenario is a record of what went live: read it, never change it."""
        return (obj is None or obj.published_at is None) and super().has_change_permission(request, obj)

    @admin.display(description="included")
    def included(self, obj: Scenario) -> int:
        return sum(getattr(obj, f"n_{k.include}") for k in KINDS)

    @admin.display(description="excluded")
    def excluded(self, obj: Scenario) -> int:
        return sum(getattr(obj, f"n_{k.exclude}") for k in KINDS)

    @admin.display(description="tier overrides", ordering="n_tier_overrides")
    def overrides(self, obj: Scenario) -> int:
        return int(obj.n_tier_overrides)  # type: ignore[attr-defined]

    # --- writes: the page is one save_scenario call ------------------------------------------------
    def save_model(self, request: HttpRequest, obj: Scenario, form: Any, change: bool) -> None:
        """Nothing yet: the scenario is saved with its choices and overrides in ``save_related``."""

    def save_related(self, request: HttpRequest, form: Any, formsets: Sequence[Any], change: bool) -> None:
        scenario: Scenario = form.instance
        overrides, prefixes = [], []
        for formset in formsets:
            for inline in formset.forms:
                data = getattr(inline, "cleaned_data", None)
                if data and not data.get("DELETE") and data.get("tier") is not None:
                    overrides.append({"tier": data["tier"], "point_multiplier": data["point_multiplier"]})
                    prefixes.append(inline.prefix)
        data = {
            "code": form.cleaned_data["code"],
            "name": form.cleaned_data["name"],
            **{
                k.field: {side: form.cleaned_data.get(getattr(k, side), []) for side in ("include", "exclude")}
                for k in KINDS
            },
            TIERS: overrides,
        }
        try:
            save_scenario(tenant=scenario.tenant, scenario=scenario, data=data, actor=request.user)
        except REFUSALS as exc:
            raise ServiceRefused(_form_errors(error_messages(exc), form.prefix or "", prefixes)) from exc

    def construct_change_message(self, request: HttpRequest, form: Any, formsets: Any, add: bool = False) -> Any:
        """The admin log names the changed fields; the overrides were saved by the service, not the
        formsets (which therefore know no new/changed/deleted rows)."""
        return super().construct_change_message(request, form, [], add)

    def delete_service(self, request: HttpRequest, obj: Scenario) -> None:
        delete_scenario(tenant=obj.tenant, scenario=obj, actor=request.user)

    # --- publish ------------------------------------------------------------------------------------
    def get_urls(self) -> list:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/publish/",
                self.admin_site.admin_view(self.publish_view),
                name="{}_{}_publish".format(*info),
            ),
            *super().get_urls(),
        ]

    def publish_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET: what publishing will change (and whether anything went stale); POST: publish."""
        scenario = self.get_object(request, unquote(object_id))
        if scenario is None:  # not found, or another tenant's
            raise Http404
        if not super().has_change_permission(request, scenario):  # the permission, published or not
            raise PermissionDenied
        change_url = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
            args=[quote(scenario.pk)],
            current_app=self.admin_site.name,
        )
        if request.method == "POST":
            if self._publish(request, scenario):
                return HttpResponseRedirect(change_url)
            return HttpResponseRedirect(request.get_full_path())
        context = {
            **self.admin_site.each_context(request),
            "title": f"Publish {scenario.name}",
            "subtitle": None,
            "opts": self.opts,
            "original": scenario,
            "changes": _planned_changes(scenario),
            "stale": stale_objects(tenant=scenario.tenant, scenario=scenario),
            "has_view_permission": self.has_view_permission(request, scenario),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.publish_template, context)

    @admin.action(description="Publish the selected scenarios", permissions=["change"])
    def publish_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        """Each in its own transaction: one refused does not hold back the others."""
        for scenario in queryset.order_by("pk"):
            self._publish(request, scenario)

    def _publish(self, request: HttpRequest, scenario: Scenario) -> bool:
        try:
            changes = publish_scenario(tenant=scenario.tenant, scenario=scenario, actor=request.user)
        except DomainError as exc:
            reasons = " ".join(m for msgs in (exc.errors or {}).values() for m in msgs)
            self.message_user(
                request, f"{scenario.name} was not published. {exc.detail} {reasons}".strip(), messages.ERROR
            )
            return False
        activated = sum(len(ids) for ids in changes.activated.values())
        archived = sum(len(ids) for ids in changes.archived.values())
        self.message_user(
            request,
            f"{scenario.name} is live: {activated} draft(s) made active, {archived} archived, "
            f"{len(changes.tier_multipliers)} tier multiplier(s) set.",
            messages.SUCCESS,
        )
        return True


def _form_errors(errors: dict[str | None, list[str]], main: str, inline_prefixes: list[str]) -> ServiceErrors:
    """The service's field names as the page's forms: ``promotion_rules.include`` is the main form's
    ``include_promotion_rules``, ``tier_overrides.2.tier`` the third kept override row's ``tier``."""
    out: ServiceErrors = {}
    for field, messages_ in errors.items():
        parts = (field or "").split(".")
        if field in FIELD_OF:
            out.setdefault(main, {}).setdefault(FIELD_OF[field], []).extend(messages_)
        elif parts[0] == TIERS and len(parts) == 3 and int(parts[1]) < len(inline_prefixes):
            out.setdefault(inline_prefixes[int(parts[1])], {}).setdefault(parts[2], []).extend(messages_)
        else:
            out.setdefault(main, {}).setdefault(field, []).extend(messages_)
    return out


def _planned_changes(scenario: Scenario) -> dict[str, Any]:
    """For the confirmation page: per kind, the codes made active and archived; the tier multipliers
    from → to."""
    scenario = Scenario.objects.prefetch_related(*SCENARIO_RELATIONS, "tier_overrides__tier__tier_type").get(
        pk=scenario.pk
    )
    kinds = [
        {
            "noun": f"{kind.noun}s",
            "activated": sorted(o.code for o in getattr(scenario, kind.include).all()),
            "archived": sorted(o.code for o in getattr(scenario, kind.exclude).all()),
        }
        for kind in KINDS
    ]
    tiers = [
        {"tier": o.tier, "now": o.tier.point_multiplier, "then": o.point_multiplier}
        for o in sorted(scenario.tier_overrides.all(), key=lambda o: (o.tier.tier_type.code, o.tier.rank))
    ]
    return {"kinds": kinds, "tiers": tiers}
