"""The portal's member pages: profiles (created through the API), their current tiers and tier history,
the "Change tier…" view (a manual change or an invitation through ``tiers.assignments``), and the member's
benefit grants with a "Revoke…" view per active grant (``benefits.member_grants.revoke_member_grant``)."""

import re
from contextvars import ContextVar
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Exists, OuterRef, Prefetch, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from benefits.member_grants import get_member_grant, revoke_member_grant
from benefits.models import MemberBenefit
from config.errors import DomainError
from events.admin_rollback import MemberRollbackMixin, can_roll_back
from events.erasure import erase_member
from events.selectors import member_export
from members.models import Member
from members.services import PROFILE_FIELDS, Registration, update_member_profile
from points.recalculation import recalculate_points
from tenancy.admin import ReadOnlyAdminMixin, TenantScopedHistoryAdmin, TenantScopedMixin
from tenancy.service_admin import add_errors, error_messages
from tiers.assignments import change_member_tier
from tiers.forms import ChangeMemberTierForm
from tiers.models import AssignmentSource, MemberTierAssignment, MemberTierChange
from tiers.periods import day_end
from tiers.selectors import tiers_held_at


class MemberForm(forms.ModelForm):
    """Profile fields, validated and normalised as at registration. Erasure is not done here."""

    class Meta:
        model = Member
        fields = list(PROFILE_FIELDS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "status" in self.fields:
            self.fields["status"].choices = [  # type: ignore[attr-defined]
                (value, label) for value, label in Member.Status.choices if value != Member.Status.ERASED
            ]

    def clean_attributes(self) -> Any:
        attributes = self.cleaned_data.get("attributes")
        if not isinstance(attributes, dict):
            raise forms.ValidationError('Must be a JSON object, e.g. {"country": "TH"}.')
        return attributes

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        profile = Registration(
            external_id=self.instance.external_id,
            name=data.get("name") or "",
            email=data.get("email") or "",
            mobile=data.get("mobile") or "",
        ).normalized()
        try:
            profile.validate()
        except DomainError as exc:
            add_errors(self, error_messages(exc))
        else:
            for field in ("name", "email", "mobile"):
                if field in data:
                    data[field] = getattr(profile, field)
        return data


class RecalculatePointsForm(forms.Form):
    since = forms.DateField(help_text="First day (tenant time), YYYY-MM-DD.")
    until = forms.DateField(help_text="Day after the last one.")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            self.add_error("until", "Must be after since.")
        return data


class RevokeGrantForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=2000,
        help_text="Required; recorded on the grant, in the audit trail and in the benefit.revoked message.",
    )

    def add_service_error(self, exc: DomainError) -> None:
        add_errors(self, error_messages(exc))


class EraseMemberForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=1000,
        help_text="Required; recorded in the audit trail (e.g. the member's request and its date).",
    )
    confirm = forms.BooleanField(
        label="I understand that this cannot be undone",
        help_text="Name, email, mobile and attributes are blanked here and in the history.",
    )

    def add_service_error(self, exc: DomainError) -> None:
        add_errors(self, error_messages(exc))


GRANTS_SHOWN = 50
# Whether the user of the current request may revoke grants (set by MemberAdmin.change_view).
_may_revoke: ContextVar[bool] = ContextVar("may_revoke_grants", default=False)


class _ReadOnlyInline(ReadOnlyAdminMixin, TenantScopedMixin, admin.TabularInline):
    extra = 0
    can_delete = False


class CurrentTierInline(_ReadOnlyInline):
    model = MemberTierAssignment
    verbose_name = "current tier"
    verbose_name_plural = "current tiers"
    fields = ["tier_type", "tier", "source", "since", "valid_until", "lock_until", "expires_at"]
    readonly_fields = ["tier_type", "tier", "source", "since", "valid_until", "lock_until", "expires_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("tier_type", "tier__tier_type")


class TierHistoryInline(_ReadOnlyInline):
    model = MemberTierChange
    verbose_name = "tier change"
    verbose_name_plural = "tier history (newest first)"
    fields = ["at", "tier_type", "from_tier", "to_tier", "source", "reason", "rule", "actor", "undo"]
    readonly_fields = ["at", "tier_type", "from_tier", "to_tier", "source", "reason", "rule", "actor", "undo"]
    ordering = ["-at", "-id"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .select_related("tier_type", "from_tier__tier_type", "to_tier__tier_type", "rule", "member")
            .annotate(rolled_back=Exists(MemberTierChange.objects.filter(reverts=OuterRef("pk"))))
        )

    @admin.display(description="")
    def undo(self, change: MemberTierChange) -> str:
        """ "Roll back…" where the change can be undone; "rolled back" where it was."""
        if getattr(change, "rolled_back", False):
            return "rolled back"
        if not _may_revoke.get() or not can_roll_back(change, change.member, known_not_reverted=True):
            return ""
        url = reverse("admin:members_member_rollback_tier", args=[quote(change.member_id), change.pk])
        return format_html('<a href="{}" class="rollback-tier-link">Roll back…</a>', url)


@admin.register(Member)
class MemberAdmin(MemberRollbackMixin, TenantScopedHistoryAdmin):
    form = MemberForm
    list_display = ["external_id", "name", "tenant", "status", "registered_at", "current_tiers"]
    search_fields = ["external_id", "email", "name"]
    list_filter = ["status", ("tier_assignments__tier", admin.RelatedOnlyFieldListFilter), "registered_at"]
    list_select_related = ["tenant"]
    date_hierarchy = "registered_at"
    inlines = [CurrentTierInline, TierHistoryInline]
    fieldsets = [
        (None, {"fields": ["tenant", "external_id", *PROFILE_FIELDS]}),
        ("Registration", {"fields": ["registered_at", "iam_linked", "updated_at"]}),
        ("Benefits", {"fields": ["benefit_grants"]}),
        ("Rollbacks", {"fields": ["rollbacks"]}),
    ]
    change_tier_template = "admin/members/member/change_tier.html"
    revoke_grant_template = "admin/members/member/revoke_grant.html"
    actions = ["recalculate_points"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        assignments = MemberTierAssignment.objects.select_related("tier", "tier_type").order_by(
            "-tier_type__priority", "tier_type_id"
        )
        return super().get_queryset(request).prefetch_related(Prefetch("tier_assignments", queryset=assignments))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        readonly = ["tenant", "external_id", "registered_at", "iam_linked", "updated_at", "benefit_grants", "rollbacks"]
        if obj is not None and obj.status == Member.Status.ERASED:
            readonly += list(PROFILE_FIELDS)  # an erased member's profile stays blank
        return readonly

    @admin.display(description="tiers")
    def current_tiers(self, obj: Member) -> str:
        return "; ".join(f"{a.tier_type.name}: {a.tier.name}" for a in obj.tier_assignments.all()) or "—"

    @admin.display(description="grants (newest first)")
    def benefit_grants(self, obj: Member) -> str:
        """The member's grants, any status, with a "Revoke…" link on each active one. (A table here, not
        an inline: the grants are written only by the services, never by this form.)"""
        grants = list(MemberBenefit.objects.filter(member=obj).select_related("benefit")[:GRANTS_SHOWN])
        if not grants:
            return "—"
        can_revoke = obj.status != Member.Status.ERASED and _may_revoke.get()
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    g.benefit.code,
                    f"{g.source}: {g.source_ref}" if g.source_ref else g.source,
                    g.status,
                    g.granted_at.strftime("%Y-%m-%d %H:%M"),
                    g.expires_at.strftime("%Y-%m-%d %H:%M") if g.expires_at else "—",
                    f"{g.uses} / {g.benefit.usage_limit}" if g.benefit.usage_limit is not None else g.uses,
                    g.reason or "—",
                    format_html(
                        '<a href="{}" class="revoke-grant-link">Revoke…</a>',
                        reverse(
                            "admin:members_member_revoke_grant",
                            args=[quote(obj.pk), g.pk],
                            current_app=self.admin_site.name,
                        ),
                    )
                    if can_revoke and g.status == MemberBenefit.Status.ACTIVE
                    else "",
                )
                for g in grants
            ),
        )
        return format_html(
            '<table class="benefit-grants"><thead><tr><th>Benefit</th><th>Source</th><th>Status</th>'
            "<th>Granted</th><th>Expires</th><th>Uses</th><th>Reason</th><th></th></tr></thead>"
            "<tbody>{}</tbody></table>",
            rows,
        )

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        # benefit_grants() gets no request: tell it, for this request only, whether the user may revoke.
        # The page is rendered here, not later by the handler, while the flag is set.
        token = _may_revoke.set(self.has_change_permission(request))
        if "tier_on" in request.GET and (member := self.get_object(request, unquote(object_id))) is not None:
            extra_context = {**(extra_context or {}), **_tier_on_date(member, request.GET["tier_on"])}
        try:
            response = super().change_view(request, object_id, form_url, extra_context)
            if isinstance(response, TemplateResponse):
                response.render()
            return response
        finally:
            _may_revoke.reset(token)

    # Members are registered through the API (registration service), never deleted (erasure keeps rows).
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Member, form: Any, change: bool) -> None:
        """A profile edit goes through the service (locked, validated, audited without personal data)."""
        original = Member.objects.get(pk=obj.pk)
        obj._history_user = request.user  # type: ignore[attr-defined]
        update_member_profile(
            tenant=original.tenant,
            member=original,
            changes={field: form.cleaned_data[field] for field in form.changed_data if field in PROFILE_FIELDS},
            actor=request.user,
        )

    # --- "Recalculate points…" (an action over the selected members) -------------------------------
    @admin.action(description="Recalculate points of the selected members…", permissions=["change"])
    def recalculate_points(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        """Preview (dry run) or apply ``points.recalculation.recalculate_points`` over a date range."""
        members = list(queryset.order_by("pk"))
        form = RecalculatePointsForm(request.POST if ("preview" in request.POST or "apply" in request.POST) else None)
        report = None
        if form.is_bound and form.is_valid():
            tenants = {m.tenant_id for m in members}
            if len(tenants) != 1:
                self.message_user(request, "Select members of one tenant at a time.", messages.ERROR)
                return None
            report = recalculate_points(
                tenant=members[0].tenant,
                since=form.cleaned_data["since"],
                until=form.cleaned_data["until"],
                actor=request.user,
                members=members,
                apply="apply" in request.POST,
            )
            if report.applied:
                self.message_user(
                    request,
                    f"{len(report.adjustments)} adjustment(s) written for {report.members} member(s), "
                    f"total {report.total:+,} points.",
                    messages.SUCCESS,
                )
                return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Recalculate points",
            "opts": self.opts,
            "members": members,
            "form": form,
            "report": report,
        }
        return TemplateResponse(request, "admin/members/member/recalculate_points.html", context)

    # --- "Change tier…" ---------------------------------------------------------------------------
    def get_urls(self) -> list:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/change-tier/",
                self.admin_site.admin_view(self.change_tier_view),
                name="{}_{}_change_tier".format(*info),
            ),
            path(
                "<path:object_id>/benefit/<int:grant_id>/revoke/",
                self.admin_site.admin_view(self.revoke_grant_view),
                name="{}_{}_revoke_grant".format(*info),
            ),
            path(
                "<path:object_id>/export/",
                self.admin_site.admin_view(self.export_view),
                name="{}_{}_export".format(*info),
            ),
            path(
                "<path:object_id>/erase/",
                self.admin_site.admin_view(self.erase_view),
                name="{}_{}_erase".format(*info),
            ),
            *super().get_urls(),
        ]

    def change_tier_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        member = self.get_object(request, unquote(object_id))
        if member is None:  # not found, or another tenant's member
            raise Http404
        if not self.has_change_permission(request, member):
            raise PermissionDenied
        form = ChangeMemberTierForm(request.POST or None, member=member)
        if request.method == "POST" and form.is_valid():
            tier = form.cleaned_data["tier"]
            try:
                change = change_member_tier(
                    tenant=member.tenant,
                    member=member,
                    tier=tier,
                    reason=form.cleaned_data["reason"],
                    actor=request.user,
                    source=form.cleaned_data["source"],
                    lock_until=form.cleaned_data["lock_until"],
                    expires_at=form.cleaned_data["expires_at"],
                )
            except DomainError as exc:
                form.add_service_error(exc)
            else:
                before = change.from_tier.name if change.from_tier else "no tier"
                self.message_user(
                    request,
                    f"{member.external_id}: {tier.tier_type.name} {before} → {tier.name} ({change.source}).",
                    messages.SUCCESS,
                )
                url = reverse("admin:members_member_change", args=[quote(member.pk)], current_app=self.admin_site.name)
                return HttpResponseRedirect(url)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Change tier: {member.external_id}",
            "subtitle": None,
            "opts": self.opts,
            "original": member,
            "form": form,
            "media": self.media + form.media,
            "assignments": member.tier_assignments.all(),
            "has_view_permission": self.has_view_permission(request, member),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.change_tier_template, context)

    # --- "Revoke…" a grant --------------------------------------------------------------------------
    def revoke_grant_view(self, request: HttpRequest, object_id: str, grant_id: int) -> HttpResponse:
        """Revoke one of the member's active grants with a required reason, through the service (under
        the member's lock, audited, announced as ``benefit.revoked``)."""
        member = self.get_object(request, unquote(object_id))
        if member is None:  # not found, or another tenant's member
            raise Http404
        if not self.has_change_permission(request, member):
            raise PermissionDenied
        try:
            grant = get_member_grant(tenant=member.tenant, member=member, grant_id=grant_id)
        except DomainError:  # another member's grant
            raise Http404 from None
        form = RevokeGrantForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                revoke_member_grant(
                    tenant=member.tenant, grant=grant, actor=request.user, reason=form.cleaned_data["reason"]
                )
            except DomainError as exc:
                form.add_service_error(exc)
            else:
                self.message_user(
                    request, f"{member.external_id}: {grant.benefit.code} (grant {grant.pk}) revoked.", messages.SUCCESS
                )
                url = reverse("admin:members_member_change", args=[quote(member.pk)], current_app=self.admin_site.name)
                return HttpResponseRedirect(url)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Revoke {grant.benefit.name}: {member.external_id}",
            "subtitle": None,
            "opts": self.opts,
            "original": member,
            "grant": grant,
            "form": form,
            "has_view_permission": self.has_view_permission(request, member),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.revoke_grant_template, context)

    # --- privacy: "Export data" and "Erase personal data…" -------------------------------------------
    def export_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Everything held about the member as a JSON file (``events.selectors.member_export``, the
        document of ``GET /member/{id}/export``). Needs change permission: it is personal data."""
        member = self.get_object(request, unquote(object_id))
        if member is None:
            raise Http404
        if not self.has_change_permission(request, member):
            raise PermissionDenied
        document = member_export(tenant=member.tenant, member=member)
        response = JsonResponse(document, encoder=DjangoJSONEncoder, json_dumps_params={"indent": 2})
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", member.external_id)
        response["Content-Disposition"] = f'attachment; filename="member-{safe}-export.json"'
        return response

    def erase_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Erase the member's personal data after a reason and an explicit confirmation
        (``events.erasure.erase_member``)."""
        member = self.get_object(request, unquote(object_id))
        if member is None:
            raise Http404
        if not self.has_change_permission(request, member):
            raise PermissionDenied
        form = EraseMemberForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                _, erased = erase_member(
                    tenant=member.tenant, member=member, reason=form.cleaned_data["reason"], actor=request.user
                )
            except DomainError as exc:
                form.add_service_error(exc)
            else:
                said = "personal data erased" if erased else "was already erased"
                self.message_user(request, f"{member.external_id}: {said}.", messages.SUCCESS)
                url = reverse("admin:members_member_change", args=[quote(member.pk)], current_app=self.admin_site.name)
                return HttpResponseRedirect(url)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Erase personal data: {member.external_id}",
            "subtitle": None,
            "opts": self.opts,
            "original": member,
            "form": form,
            "has_view_permission": self.has_view_permission(request, member),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/members/member/erase.html", context)


_SOURCE_WORDS: dict[str, str] = {
    AssignmentSource.AUTO: "qualified (automatic)",
    AssignmentSource.MANUAL: "manual change",
    AssignmentSource.INVITATION: "invitation",
    AssignmentSource.EVENT_CODE: "event code",
    AssignmentSource.REVIEW: "periodic review",
    AssignmentSource.ROLLBACK: "rollback",
    AssignmentSource.RECONCILIATION: "reconciliation repair",
}


def _tier_on_date(member: Member, raw: str) -> dict[str, Any]:
    """The "Tier on a date" answer of the member page: the tiers held at the end of that day in the
    tenant's time (``tiers.selectors.tiers_held_at``), or why the date cannot be answered."""
    tz = ZoneInfo(member.tenant.timezone)
    try:
        day = date.fromisoformat(raw.strip())
    except ValueError:
        return {"tier_on": raw, "tier_on_error": "Enter a date as YYYY-MM-DD."}
    today = timezone.now().astimezone(tz).date()
    if day > today:
        return {"tier_on": raw, "tier_on_error": "Pick today or a past day: the history knows only the past."}
    at = min(day_end(day, tz) - timedelta(microseconds=1), timezone.now())
    held = tiers_held_at(tenant=member.tenant, member=member, at=at)
    return {
        "tier_on": day.isoformat(),
        "tier_on_zone": member.tenant.timezone,
        "tier_on_rows": [
            (h.tier_type.name, h.tier.name, f"{h.since.astimezone(tz):%Y-%m-%d %H:%M}", _SOURCE_WORDS[h.source])
            for h in held
        ],
    }
