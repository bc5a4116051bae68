"""Admin forms of the tier context.

- :class:`ServiceForm` / :class:`ServiceFormSet`: forms that can show errors a service raised while the
  admin saved the same POST (``tiers.admin.ServiceAdmin`` rolls that save back and renders the page
  again from the same data, with these errors on the fields they name).
- :class:`PromotionRuleForm`: criteria edited in the one-line-per-criterion text form.
- :class:`ChangeMemberTierForm`: the member page's "Change tier…" view.
"""

import json
from typing import Any, ClassVar

from django import forms
from django.contrib.admin.widgets import AdminSplitDateTime
from django.core.exceptions import ValidationError

from config.errors import DomainError
from tenancy.service_admin import ServiceForm, add_errors, error_messages
from tiers.criteria import CriteriaError, format_criteria_text, parse_criteria_text
from tiers.models import AssignmentSource, PromotionRule, Tier


class TierForm(ServiceForm):
    class Meta:
        model = Tier
        fields = [  # the tenant is the tier type's
            "tier_type",
            "code",
            "name",
            "rank",
            "is_default",
            "climbable",
            "immutable",
            "point_multiplier",
            "available_from",
            "available_until",
            "description",
        ]


class PromotionRuleForm(ServiceForm):
    """Criteria as text, one per line (``quantity:nights >= 25``, ``spend >= 5000 window 365``,
    ``attribute:country in TH, SG``) instead of raw JSON."""

    criteria = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 5, "cols": 60, "spellcheck": "false"}),
        help_text=(
            "One criterion per line: <code>metric operator value [window days]</code>, e.g. "
            "<code>quantity:nights &gt;= 25</code>, <code>spend &gt;= 5000 window 365</code>, "
            "<code>attribute:country in TH, SG</code>. Metrics: spend, transactions, points, "
            "quantity:&lt;name&gt;, events:&lt;type&gt;, attribute:&lt;name&gt;, days_inactive, tenure_days. "
            "Operators: &gt;= &gt; &lt;= &lt; = != in."
        ),
    )

    class Meta:
        model = PromotionRule
        fields = [  # the tenant is the tier type's
            "tier_type",
            "code",
            "name",
            "direction",
            "target_tier",
            "status",
            "priority",
            "combinator",
            "criteria",
            "effective_from",
            "effective_until",
            "description",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stored = self.initial.get("criteria")
        if isinstance(stored, list):
            try:
                self.initial["criteria"] = format_criteria_text(stored)
            except (KeyError, TypeError, AttributeError):  # stored JSON that is not criteria: show it raw
                self.initial["criteria"] = json.dumps(stored)

    def clean_criteria(self) -> list[dict[str, Any]]:
        try:
            return parse_criteria_text(self.cleaned_data["criteria"])
        except CriteriaError as exc:
            raise ValidationError(exc.messages) from exc


class ChangeMemberTierForm(forms.Form):
    """A manual change or an invitation (DOMAIN §3.4), for one member."""

    tier = forms.ModelChoiceField(queryset=Tier.objects.none(), help_text="Tiers of the tenant's active tier types.")
    source = forms.ChoiceField(
        choices=[
            (AssignmentSource.MANUAL, "manual: any tier, even out of an immutable tier"),
            (AssignmentSource.INVITATION, "invitation: only upward, never out of an immutable tier"),
        ],
        initial=AssignmentSource.MANUAL,
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), max_length=2000)
    lock_until = forms.SplitDateTimeField(
        required=False, widget=AdminSplitDateTime, help_text="Optional: no automatic movement before this."
    )
    expires_at = forms.SplitDateTimeField(
        required=False, widget=AdminSplitDateTime, help_text="Optional: the member then returns to the entitled tier."
    )

    # Service error fields that this form shows on another field.
    ALIASES: ClassVar[dict[str, str]] = {"tier_type": "tier"}

    def __init__(self, *args: Any, member: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["tier"]
        field.queryset = (  # type: ignore[attr-defined]
            Tier.objects.filter(tenant=member.tenant_id, tier_type__active=True)
            .select_related("tier_type")
            .order_by("-tier_type__priority", "tier_type__code", "rank")
        )
        field.label_from_instance = lambda t: f"{t.tier_type.name}: {t.name} (rank {t.rank})"  # type: ignore[attr-defined]

    def add_service_error(self, exc: DomainError) -> None:
        add_errors(self, error_messages(exc), self.ALIASES)
