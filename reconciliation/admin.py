"""The reconciliation pages of the admin: the runs (a list, "Reconcile now" with its form), and a run's
page: what was checked, how far it got (refreshing while it works), found and repaired per check, and
the discrepancies page by page in words. Runs are written only by ``reconciliation.runs``; a staff
user sees and starts runs of their own tenants only."""

from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from config.errors import DomainError, Invalid
from reconciliation.models import CHECKS, ReconciliationRun
from reconciliation.runs import cancel_run, create_run
from reconciliation.selectors import discrepancies
from reconciliation.tasks import queue_run
from tenancy.admin import TenantScopedAdmin
from tenancy.selectors import tenants_for_user
from tiers.models import Tier

PER_PAGE = 50
CHECK_WORDS = {
    "points": "Points per event",
    "tiers": "Tiers",
    "benefits": "Tier benefits",
    "sync": "Point Service and IAM syncs",
    "outbox": "Outbox deliveries",
}
CODE_WORDS = {
    "points_mismatch": "Points differ from the event log",
    "tier_mismatch": "Holds another tier than the event log gives",
    "tier_missing": "Holds no tier in this tier type",
    "benefit_missing": "Entitled benefit not granted",
    "benefit_extra": "Benefit granted without entitlement",
    "sync_failed": "Sync gave up",
    "outbox_stuck": "Waiting past its schedule",
}
STATUS_WORDS = {
    "queued": "Waiting for a worker",
    "running": "Checking",
    "done": "Finished",
    "failed": "Failed",
    "cancelled": "Cancelled",
}


class StartForm(forms.Form):
    tenant: forms.ModelChoiceField = forms.ModelChoiceField(queryset=None, label="Program", empty_label=None)
    checks = forms.MultipleChoiceField(
        choices=[(c, CHECK_WORDS[c]) for c in CHECKS],
        widget=forms.CheckboxSelectMultiple,
        initial=list(CHECKS),
        label="Check",
    )
    fix = forms.BooleanField(
        required=False,
        label="Repair what is found",
        help_text="Otherwise only report. Repairs are recorded like any change: point adjustments, tier changes, "
        "benefit grants and revocations, retried deliveries — each audited and announced.",
    )
    members = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        label="Only these members",
        help_text="Member ids, one per line or separated by commas; empty for every member.",
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        tenants = tenants_for_user(user).order_by("name")
        field: Any = self.fields["tenant"]
        field.queryset = tenants
        if tenants.count() == 1:
            field.initial, field.widget = tenants.first(), forms.HiddenInput()

    def member_ids(self) -> list[str] | None:
        raw = self.cleaned_data["members"].replace(",", "\n")
        ids = [line.strip() for line in raw.splitlines() if line.strip()]
        return ids or None


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(TenantScopedAdmin):
    run_template = "admin/reconciliation/reconciliationrun/run.html"
    start_template = "admin/reconciliation/reconciliationrun/start.html"
    change_list_template = "admin/reconciliation/reconciliationrun/change_list.html"
    list_display = ["started", "mode", "status_word", "progress", "found", "repaired", "requester"]
    list_filter = ["status", "fix"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a run is a record: read, cancelled, deleted

    @admin.display(description="started", ordering="created_at")
    def started(self, run: ReconciliationRun) -> str:
        local = timezone.localtime(run.created_at, ZoneInfo(run.tenant.timezone))
        return f"{local:%d %b %Y, %H:%M} ({run.tenant.timezone.split('/')[-1].replace('_', ' ')} time)"

    @admin.display(description="mode", ordering="fix")
    def mode(self, run: ReconciliationRun) -> str:
        return "Check and repair" if run.fix else "Check only"

    @admin.display(description="status", ordering="status")
    def status_word(self, run: ReconciliationRun) -> str:
        return STATUS_WORDS.get(run.status, run.status)

    @admin.display(description="progress")
    def progress(self, run: ReconciliationRun) -> str:
        return f"{run.members_done:,} of {run.members_total:,} members"

    @admin.display(description="found")
    def found(self, run: ReconciliationRun) -> int:
        return sum(run.counts.values())

    @admin.display(description="repaired")
    def repaired(self, run: ReconciliationRun) -> int:
        return sum(run.fixed.values())

    @admin.display(description="requested by", ordering="requested_by")
    def requester(self, run: ReconciliationRun) -> str:
        who = run.requested_by
        return who.removeprefix("user:") if who.startswith("user:") else who or "—"

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).select_related("tenant")

    def get_urls(self) -> list:
        info = self.opts.app_label, self.opts.model_name
        view = self.admin_site.admin_view
        return [
            path("start/", view(self.start_view), name="{}_{}_start".format(*info)),
            path("<path:object_id>/cancel/", view(self.cancel_view), name="{}_{}_cancel".format(*info)),
            *super().get_urls(),
        ]

    def _can_start(self, request: HttpRequest) -> bool:
        return request.user.has_perm("reconciliation.add_reconciliationrun") or request.user.is_superuser

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return super().changelist_view(request, {**(extra_context or {}), "can_start": self._can_start(request)})

    def start_view(self, request: HttpRequest) -> HttpResponse:
        """GET: the form; POST: ``create_run`` (refusals show on the form), then the run's page."""
        if not self._can_start(request):
            raise PermissionDenied
        form = StartForm(request.POST or None, user=request.user)
        if request.method == "POST" and form.is_valid():
            try:
                run = queue_run(
                    create_run(
                        tenant=form.cleaned_data["tenant"],
                        fix=form.cleaned_data["fix"],
                        checks=form.cleaned_data["checks"],
                        member_ids=form.member_ids(),
                        actor=request.user,
                    )
                )
            except Invalid as exc:
                for name, errors in (exc.errors or {}).items():
                    for error in errors:
                        form.add_error(name if name in form.fields else None, error)
            except DomainError as exc:
                form.add_error(None, str(exc.detail))
            else:
                messages.success(request, "The reconciliation has started.")
                return HttpResponseRedirect(self._run_url(run))
        context = {
            **self.admin_site.each_context(request),
            "title": "Reconcile now",
            "opts": self.opts,
            "form": form,
            "media": self.media + form.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.start_template, context)

    def _run_url(self, run: ReconciliationRun) -> str:
        return reverse(
            "admin:reconciliation_reconciliationrun_change", args=[quote(run.pk)], current_app=self.admin_site.name
        )

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The run's page (there is nothing to edit on a run)."""
        run = self.visible_object(request, object_id)
        running = run.status in ReconciliationRun.ACTIVE
        tz = ZoneInfo(run.tenant.timezone)
        page = Paginator(discrepancies(run=run), PER_PAGE).get_page(request.GET.get("page"))
        type_names, tier_names = _tier_names(run)
        rows = []
        for d in page:
            subject, expected, actual = d.subject, _shown(d.expected), _shown(d.actual)
            if d.kind == "tiers":  # codes in the API, names on the page
                subject = type_names.get(d.subject, d.subject)
                expected = tier_names.get((d.subject, str(d.expected)), expected)
                actual = tier_names.get((d.subject, str(d.actual)), actual)
            rows.append(
                {
                    "member": d.member_id or "—",
                    "check": CHECK_WORDS.get(d.kind, d.kind),
                    "what": CODE_WORDS.get(d.code, d.code),
                    "subject": subject,
                    "expected": expected,
                    "actual": actual,
                    "fixed": d.fixed,
                }
            )
        context = {
            **self.admin_site.each_context(request),
            "title": f"{self.mode(run)} of {self.started(run)}",
            "subtitle": None,
            "opts": self.opts,
            "original": run,
            "run": run,
            "status": STATUS_WORDS.get(run.status, run.status),
            "running": running,
            "percent": 100 if run.status == "done" else int(100 * run.members_done / max(run.members_total, 1)),
            "checks": [
                {"name": CHECK_WORDS[c], "found": run.counts.get(c, 0), "fixed": run.fixed.get(c, 0)}
                for c in run.checks
            ],
            "members": ", ".join(run.member_ids) if run.member_ids else None,
            "finished_at": f"{timezone.localtime(run.finished_at, tz):%d %b %Y, %H:%M}" if run.finished_at else None,
            "requester": self.requester(run),
            "page": page,
            "rows": rows,
            "can_cancel": running and self._can_start(request),
            "has_view_permission": True,
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.run_template, context)

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        run = self.visible_object(request, object_id)
        if not self._can_start(request):
            raise PermissionDenied
        try:
            cancel_run(tenant=run.tenant, run=run, actor=request.user)
        except DomainError as exc:
            messages.error(request, str(exc.detail))
        else:
            messages.success(request, "The reconciliation was cancelled; what it found so far is kept.")
        return HttpResponseRedirect(self._run_url(run))


def _tier_names(run: ReconciliationRun) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    tiers = Tier.objects.filter(tier_type__tenant=run.tenant).select_related("tier_type")
    return (
        {t.tier_type.code: t.tier_type.name or t.tier_type.code for t in tiers},
        {(t.tier_type.code, t.code): t.name or t.code for t in tiers},
    )


def _shown(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
