"""The simulation pages of the admin: "Run simulation" on a scenario's page (``ScenarioRunMixin``,
mixed into ``simulation.admin.ScenarioAdmin``; its "Validate" is ``simulation.admin_warnings``'s), and
the runs: a list, and a run page with a progress bar that updates while the run works (a small JSON
status view polled by a few lines of script), Cancel while it runs, the error when it failed, and when
it is done the result as charts and tables (``simulation.report``), the affected members page by page and as a CSV file.

Everything is scoped to the staff user's tenants like the other admin pages: another tenant's
scenario or run is "not found".
"""

import csv
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.contrib.admin.widgets import AdminDateWidget
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from config.errors import DomainError, Invalid
from simulation.backtest import cancel
from simulation.models import Scenario, SimulationRun
from simulation.report import STATUS_WORDS, report
from simulation.runs import start_run
from simulation.selectors import affected_members
from tenancy.admin import TenantScopedAdmin
from tenancy.models import Tenant
from tiers.models import TierType

AFFECTED_PER_PAGE = 50
FIELD_OF_ERROR = {"from": "starts", "to": "ends", "sample": "sample", "tier_type": "tier_type"}


def tenant_today(tenant: Tenant) -> date:
    return timezone.localdate(timezone=ZoneInfo(tenant.timezone))


class RunForm(forms.Form):
    """What to backtest: a range of the program's days, optionally a sample of members and one tier type."""

    starts = forms.DateField(label="From", widget=AdminDateWidget, help_text="First day, in the program's time zone.")
    ends = forms.DateField(label="To", widget=AdminDateWidget, help_text="Last day, included.")
    sample = forms.IntegerField(
        label="Sample", min_value=1, required=False, help_text="At most this many members; empty for all."
    )
    tier_type = forms.ModelChoiceField(
        queryset=TierType.objects.none(), required=False, empty_label="All tier types", label="Tier type"
    )

    def __init__(self, *args: Any, tenant: Tenant, **kwargs: Any) -> None:
        today = tenant_today(tenant)
        kwargs.setdefault("initial", {"starts": today - timedelta(days=365), "ends": today})
        super().__init__(*args, **kwargs)
        field: Any = self.fields["tier_type"]
        field.queryset = TierType.objects.filter(tenant=tenant).order_by("code")
        field.label_from_instance = lambda t: t.name or t.code


def _can_run(request: HttpRequest) -> bool:
    return request.user.has_perm("simulation.add_simulationrun")


class ScenarioRunMixin:
    """Adds to the scenario admin: the change page's "Run simulation" form, and
    the ``<id>/run/`` view the form posts to (which shows the form again with its errors)."""

    run_template = "admin/simulation/scenario/run.html"
    admin_site: Any
    opts: Any

    def get_urls(self) -> list:
        info = self.opts.app_label, self.opts.model_name
        return [
            path("<path:object_id>/run/", self.admin_site.admin_view(self.run_view), name="{}_{}_run".format(*info)),
            *super().get_urls(),  # type: ignore[misc]
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        scenario = self.get_object(request, unquote(object_id))  # type: ignore[attr-defined]
        extra = dict(extra_context or {})
        if scenario is not None and scenario.published_at is None and _can_run(request):
            extra["run_form"] = RunForm(tenant=scenario.tenant, prefix="run")
        return super().change_view(request, object_id, form_url, extra)  # type: ignore[misc]

    def run_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET: the form; POST: ``start_run``, then the run's page (refusals show on the form)."""
        scenario: Scenario | None = self.get_object(request, unquote(object_id))  # type: ignore[attr-defined]
        if scenario is None:
            raise Http404
        if not _can_run(request):
            raise PermissionDenied
        form = RunForm(request.POST or None, tenant=scenario.tenant, prefix="run")
        if request.method == "POST" and form.is_valid():
            try:
                run = start_run(
                    tenant=scenario.tenant,
                    scenario_id=scenario.pk,
                    starts=form.cleaned_data["starts"],
                    ends=form.cleaned_data["ends"],
                    sample=form.cleaned_data["sample"],
                    tier_type_id=form.cleaned_data["tier_type"].pk if form.cleaned_data["tier_type"] else None,
                    actor=request.user,
                )
            except Invalid as exc:
                for name, errors in (exc.errors or {}).items():
                    for error in errors:
                        form.add_error(FIELD_OF_ERROR.get(name), error)
            else:
                messages.success(request, f"The simulation of {scenario.name} has started.")
                return HttpResponseRedirect(
                    reverse(
                        "admin:simulation_simulationrun_change", args=[quote(run.pk)], current_app=self.admin_site.name
                    )
                )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Run a simulation of {scenario.name}",
            "subtitle": None,
            "opts": self.opts,
            "original": scenario,
            "run_form": form,
            "media": self.media + form.media,  # type: ignore[attr-defined]
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.run_template, context)


@admin.register(SimulationRun)
class SimulationRunAdmin(TenantScopedAdmin):
    """Runs are started from a scenario's page and written only by the backtest: listed and read here,
    cancelled while they work, deleted when no longer wanted."""

    run_template = "admin/simulation/simulationrun/run.html"
    list_display = ["title", "period", "status_word", "progress", "requester", "created_at"]
    list_filter = ["status"]
    list_select_related = ["scenario", "tenant"]
    search_fields = ["scenario__code", "scenario__name", "requested_by"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="simulation", ordering="scenario__name")
    def title(self, run: SimulationRun) -> str:
        return run.scenario.name if run.scenario else "Live rules (no scenario)"

    @admin.display(description="period", ordering="starts")
    def period(self, run: SimulationRun) -> str:
        return f"{run.starts:%Y-%m-%d} to {run.ends:%Y-%m-%d}"

    @admin.display(description="status", ordering="status")
    def status_word(self, run: SimulationRun) -> str:
        return STATUS_WORDS.get(run.status, run.status)

    @admin.display(description="progress")
    def progress(self, run: SimulationRun) -> str:
        return f"{_percent(run)}% ({run.members_done:,} of {run.members_total:,} members)"

    @admin.display(description="requested by", ordering="requested_by")
    def requester(self, run: SimulationRun) -> str:
        return _requester(run)

    def get_urls(self) -> list:
        info = self.opts.app_label, self.opts.model_name
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/status/", view(self.status_view), name="{}_{}_status".format(*info)),
            path("<path:object_id>/cancel/", view(self.cancel_view), name="{}_{}_cancel".format(*info)),
            path("<path:object_id>/members.csv", view(self.csv_view), name="{}_{}_csv".format(*info)),
            *super().get_urls(),
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The run page (there is nothing to edit on a run)."""
        run = self.visible_object(request, object_id)
        running = run.status not in SimulationRun.FINISHED
        result = report(run.result) if run.status == SimulationRun.Status.DONE and run.result else None
        page = None
        if result is not None:
            page = Paginator(affected_members(run=run), AFFECTED_PER_PAGE).get_page(request.GET.get("page"))
        context = {
            **self.admin_site.each_context(request),
            "title": self.title(run),
            "subtitle": self.period(run),
            "opts": self.opts,
            "original": run,
            "run": run,
            "status": STATUS_WORDS.get(run.status, run.status),
            "percent": _percent(run),
            "running": running,
            "requester": _requester(run),
            "elapsed": _elapsed(run),
            "can_cancel": running and self.has_change_permission(request, run),
            "report": result,
            "currency": run.tenant.currency,
            "affected": page,
            "has_view_permission": True,
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.run_template, context)

    def status_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        """What the run page's progress bar polls."""
        run = self.visible_object(request, object_id)
        return JsonResponse(
            {
                "status": run.status,
                "label": STATUS_WORDS.get(run.status, run.status),
                "percent": _percent(run),
                "members_done": run.members_done,
                "members_total": run.members_total,
                "finished": run.status in SimulationRun.FINISHED,
            }
        )

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST: ``cancel`` (a finished run: said so, nothing changes); back to the run's page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        run = self.visible_object(request, object_id)
        if not self.has_change_permission(request, run):
            raise PermissionDenied
        try:
            cancel(tenant=run.tenant, run=run)
        except DomainError as exc:
            messages.error(request, str(exc.detail))
        else:
            messages.success(request, "The simulation was cancelled.")
        return HttpResponseRedirect(
            reverse("admin:simulation_simulationrun_change", args=[quote(run.pk)], current_app=self.admin_site.name)
        )

    def csv_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The affected members as a file, the columns of the API's CSV."""
        run = self.visible_object(request, object_id)
        name = run.scenario.code if run.scenario else "live"
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="simulation-{name}-{run.starts}-{run.ends}.csv"'
        writer = csv.writer(response)
        writer.writerow(["member_id", "tier_type", "baseline", "scenario", "points_delta"])
        for row in (
            affected_members(run=run)
            .values_list("member_id", "tier_type", "baseline", "scenario", "points_delta")
            .iterator(chunk_size=2000)
        ):
            writer.writerow(row)
        return response


def _percent(run: SimulationRun) -> int:
    if run.status == SimulationRun.Status.DONE:
        return 100
    if not run.chunks_total:
        return 0
    return min(100, int(100 * run.chunks_done / run.chunks_total))


def _elapsed(run: SimulationRun) -> str:
    """How long a finished run took, in words ("" when it did not run)."""
    if run.started_at is None or run.finished_at is None:
        return ""
    seconds = max(0, round((run.finished_at - run.started_at).total_seconds()))
    minutes, seconds = divmod(seconds, 60)
    if minutes:
        return f"{minutes} min {seconds} s"
    return f"{seconds} s"


def _requester(run: SimulationRun) -> str:
    who = run.requested_by
    return who.removeprefix("user:") if who.startswith("user:") else who or "—"
