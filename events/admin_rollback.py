"""The member page's "Roll back…" on a tier change (``events.rollback.rollback_tier_change``): what the
member holds now and what they would return to, side by side, and a required reason. Mixed into
``events.admin_members.MemberAdmin``; the link sits on each row of the tier history that can be undone
(not itself a rollback, not already rolled back, the member not erased)."""

from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from benefits.models import MemberBenefit
from config.errors import DomainError
from events.rollback import RollbackEntry, rollback_history, rollback_tier_change
from members.models import Member
from tenancy.service_admin import add_errors, error_messages
from tiers.models import AssignmentSource, MemberTierAssignment, MemberTierChange, Tier


def _undone(entry: RollbackEntry, names: dict[Any, str]) -> str:
    """What was undone, in words: the tier movement (names, not codes), the points, or the benefit."""
    before, after = entry["before"] or {}, entry["after"] or {}
    if entry["kind"] == "tier":
        code = before.get("tier_type")
        was, now = (names.get((code, t), t) if t else "no tier" for t in (before.get("tier"), after.get("tier")))
        return f"{names.get(code, code)}: {was} → {now}"
    if entry["kind"] == "points":
        return f"{before.get('points', 0):,} points"
    return names.get(entry["target"], "a benefit")


class RollbackTierForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=1000,
        help_text="Required; recorded in the tier history, the audit trail and the tier.changed message.",
    )

    def add_service_error(self, exc: DomainError) -> None:
        add_errors(self, error_messages(exc))


def can_roll_back(change: MemberTierChange, member: Member, *, known_not_reverted: bool = False) -> bool:
    """Whether the tier history row gets a "Roll back…" link."""
    return (
        member.status != Member.Status.ERASED
        and change.source != AssignmentSource.ROLLBACK
        and (known_not_reverted or not MemberTierChange.objects.filter(reverts=change).exists())
    )


KIND_WORDS = {"tier": "tier change undone", "points": "points reversed", "benefit": "benefit revoked"}


class MemberRollbackMixin:
    rollback_tier_template = "admin/members/member/rollback_tier.html"
    admin_site: Any
    opts: Any

    @admin.display(description="rollbacks (newest first)")
    def rollbacks(self, obj: Member) -> str:
        """The member's rollback history (``events.rollback.rollback_history``) as a table."""
        entries = rollback_history(tenant=obj.tenant, member=obj)
        if not entries:
            return "—"
        tz = ZoneInfo(obj.tenant.timezone)
        granted = [e["target"] for e in entries if e["kind"] == "benefit"]
        names: dict[Any, str] = dict(
            MemberBenefit.objects.filter(member=obj, pk__in=granted).values_list("pk", "benefit__name")
        )
        for tier in Tier.objects.filter(tier_type__tenant=obj.tenant).select_related("tier_type"):
            names[tier.tier_type.code] = tier.tier_type.name or tier.tier_type.code
            names[(tier.tier_type.code, tier.code)] = tier.name or tier.code
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    f"{timezone.localtime(e['at'], tz):%d %b %Y, %H:%M}",
                    KIND_WORDS.get(e["kind"], e["kind"]),
                    _undone(e, names),
                    e["reason"],
                    e["actor"].removeprefix("user:"),
                )
                for e in entries
            ),
        )
        return format_html(
            '<table class="rollbacks"><thead><tr><th>When ({})</th><th>What</th><th>Of</th><th>Reason</th>'
            "<th>By</th></tr></thead><tbody>{}</tbody></table>",
            obj.tenant.timezone,
            rows,
        )

    def get_urls(self) -> list:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/tier-change/<int:change_id>/roll-back/",
                self.admin_site.admin_view(self.rollback_tier_view),
                name="{}_{}_rollback_tier".format(*info),
            ),
            *super().get_urls(),  # type: ignore[misc]
        ]

    def rollback_tier_view(self, request: HttpRequest, object_id: str, change_id: int) -> HttpResponse:
        member = self.get_object(request, unquote(object_id))  # type: ignore[attr-defined]
        if member is None:  # not found, or another tenant's member
            raise Http404
        if not self.has_change_permission(request, member):  # type: ignore[attr-defined]
            raise PermissionDenied
        change = (
            MemberTierChange.objects.filter(member=member, pk=change_id)
            .select_related("tier_type", "from_tier", "to_tier")
            .first()
        )
        if change is None:  # another member's change
            raise Http404
        form = RollbackTierForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                done = rollback_tier_change(
                    tenant=member.tenant,
                    member=member,
                    tier_type=change.tier_type,
                    change_id=change.pk,
                    reason=form.cleaned_data["reason"],
                    actor=request.user,
                )
            except DomainError as exc:
                form.add_service_error(exc)
            else:
                was = done.from_tier.name if done.from_tier else "no tier"
                now = done.to_tier.name if done.to_tier else "no tier"
                self.message_user(  # type: ignore[attr-defined]
                    request,
                    f"{member.external_id}: {change.tier_type.name} {was} → {now} (rolled back).",
                    messages.SUCCESS,
                )
                url = reverse("admin:members_member_change", args=[quote(member.pk)], current_app=self.admin_site.name)
                return HttpResponseRedirect(url)
        held = (
            MemberTierAssignment.objects.filter(member=member, tier_type=change.tier_type)
            .select_related("tier")
            .first()
        )
        tz = ZoneInfo(member.tenant.timezone)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Roll back a tier change: {member.external_id}",
            "subtitle": None,
            "opts": self.opts,
            "original": member,
            "change": change,
            "at": f"{timezone.localtime(change.at, tz):%d %b %Y, %H:%M}",
            "zone": member.tenant.timezone,
            "held": held.tier.name if held else "no tier",
            "back_to": change.from_tier.name if change.from_tier else "no tier",
            "form": form,
            "has_view_permission": self.has_view_permission(request, member),  # type: ignore[attr-defined]
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.rollback_tier_template, context)
