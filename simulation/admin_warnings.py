"""Static validation in the configuration portal (DOMAIN §9 "shown as warnings on save in the admin").

The change pages of tier types, tiers, promotion rules, conversion rules and modifiers show, above the
form, the validation issues of the live program that concern the object (a draft is judged as if it were
live), and a save that leaves such issues says so in a warning message.

Layers go one way: ``tiers`` and ``points`` know nothing of simulation. :func:`install` (called from
``SimulationConfig.ready``, after the admin has autodiscovered every app's ``admin`` module) re-registers
each of those models with its own admin class extended by :class:`ValidationWarningsMixin`.
"""

from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse

from simulation.selectors import KIND_OF, issues_about
from simulation.validation import Issue

TEMPLATE = "admin/simulation/change_form_with_issues.html"


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


def install(site: admin.AdminSite = admin.site) -> None:
    """Extend the registered admin of every validated model with :class:`ValidationWarningsMixin`."""
    for model in KIND_OF:
        if not site.is_registered(model):
            continue
        current = site.get_model_admin(model)
        if isinstance(current, ValidationWarningsMixin):
            continue
        extended = type(type(current).__name__, (ValidationWarningsMixin, type(current)), {})
        site.unregister(model)
        site.register(model, extended)
