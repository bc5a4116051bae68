"""Static validation in the configuration portal (DOMAIN §9 "shown as warnings on save in the admin").

The change pages of tier types, tiers, promotion rules, conversion rules and modifiers show, above the
form, the validation issues of the live program that concern the object (a draft is judged as if it were
live), and a save that leaves such issues says so in a warning message.

A scenario's page shows every issue of the program it would make live, has a "Validate" link that runs
the validation again and reports it (also when nothing was found), and warns after a save.

Layers go one way: ``tiers`` and ``points`` know nothing of simulation. :func:`install` (called from
``SimulationConfig.ready``, after the admin has autodiscovered every app's ``admin`` module) re-registers
each of those models with its own admin class extended by :class:`ValidationWarningsMixin` (the
scenario's by :class:`ScenarioValidationMixin`).
"""

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse

from simulation.models import Scenario
from simulation.selectors import KIND_OF, issues_about, validation_issues
from simulation.validation import ERROR, Issue

TEMPLATE = "admin/simulation/change_form_with_issues.html"
SCENARIO_TEMPLATE = "admin/simulation/scenario/change_form_with_issues.html"


class ValidationWarningsMixin:
    """Validation issues of the object on its change form, and as warnings after a save."""

    change_form_template = TEMPLATE

    def validation_issues(self, obj: Any) -> list[Issue]:
        if obj is None or obj.pk is None:
            return []
        return issues_about(tenant=obj.tenant, obj=obj)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> HttpResponse:
        context["validation_issues"] = self.validation_issues(obj)
        return super().render_change_form(request, context, add, change, form_url, obj)  # type: ignore[misc]

    def response_add(self, request: HttpRequest, obj: Any, post_url_continue: str | None = None) -> HttpResponse:
        response = super().response_add(request, obj, post_url_continue)  # type: ignore[misc]
        self._warn(request, obj)  # after "was added successfully"
        return response

    def response_change(self, request: HttpRequest, obj: Any) -> HttpResponse:
        response = super().response_change(request, obj)  # type: ignore[misc]
        self._warn(request, obj)
        return response

    def _warn(self, request: HttpRequest, obj: Any) -> None:
        if "_continue" in request.POST:  # back on the change form, which lists them
            return
        for issue in self.validation_issues(obj):
            messages.warning(request, f"Validation: {issue.message}")


class ScenarioValidationMixin(ValidationWarningsMixin):
    """A scenario's page: the issues of the program it would make live, and a "Validate" link."""

    change_form_template = SCENARIO_TEMPLATE

    def validation_issues(self, obj: Any) -> list[Issue]:
        if obj is None or obj.pk is None or obj.published_at is not None:
            return []  # a published scenario is a record: the live program is validated elsewhere
        return validation_issues(tenant=obj.tenant, scenario=obj)

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name  # type: ignore[attr-defined]
        view = self.admin_site.admin_view(self.validate_view)  # type: ignore[attr-defined]
        return [
            path("<path:object_id>/validate/", view, name="{}_{}_validate".format(*info)),
            *super().get_urls(),  # type: ignore[misc]
        ]

    def validate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Validate the program the scenario would make live; report it on the scenario's page."""
        scenario = self.get_object(request, unquote(object_id))  # type: ignore[attr-defined]
        if scenario is None:  # not found, or another tenant's
            raise Http404
        if not self.has_view_permission(request, scenario):  # type: ignore[attr-defined]
            raise PermissionDenied
        issues = self.validation_issues(scenario)
        if not issues:
            messages.success(request, "Validation found no issues in the program this scenario would make live.")
        for issue in issues:
            level = messages.ERROR if issue.severity == ERROR else messages.WARNING
            messages.add_message(request, level, f"Validation: {issue.message}")
        opts = self.opts  # type: ignore[attr-defined]
        return HttpResponseRedirect(
            reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[quote(scenario.pk)])
        )


def install(site: admin.AdminSite = admin.site) -> None:
    """Extend the registered admin of every validated model with :class:`ValidationWarningsMixin`, and
    the scenario's with :class:`ScenarioValidationMixin`."""
    mixins: dict[type, type] = dict.fromkeys(KIND_OF, ValidationWarningsMixin)
    mixins[Scenario] = ScenarioValidationMixin
    for model, mixin in mixins.items():
        if not site.is_registered(model):
            continue
        current: admin.ModelAdmin = site.get_model_admin(model)
        if isinstance(current, mixin):
            continue
        extended = type(type(current).__name__, (mixin, type(current)), {})
        site.unregister(model)
        site.register(model, extended)
