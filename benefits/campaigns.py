"""Campaign benefits (DOMAIN §5): an event carrying a ``campaign_code`` grants the benefits mapped to
that campaign (``CampaignBenefitMapping``) whose criteria hold once the event is counted.

Choices where DOMAIN.md is silent (tested in tests/benefits/test_campaign_benefits.py):

* A campaign rewards participation once: a member gets each benefit of a campaign at most once, ever
  (any earlier grant with that campaign as its source, whatever its status, means no new grant), so
  a used voucher is not handed out again by the member's next campaign event.
* Criteria (of the mapping and of a conditional benefit) are judged on the member's metrics after the
  event, with validity windows at the time of evaluation, like tier benefits.
* Refunds grant nothing (``qualifying`` is about tier metrics and does not matter here). A limited
  benefit that is exhausted is reported under ``exhausted`` in the event's result; one the member
  already holds active from another campaign is not granted twice (grants are unique per member,
  benefit and source).
"""

from datetime import datetime
from typing import Any

from django.db.models import Q

from benefits.engine import campaign_benefits
from benefits.grants import benefit_catalog, criteria_judge, grant_benefit
from benefits.models import Benefit, CampaignBenefitMapping, MemberBenefit
from members.models import Member
from tenancy.models import Tenant


def grant_campaign_benefits(
    *, tenant: Tenant, member: Member, campaign_code: str, actor: Any, now: datetime
) -> dict[str, list[str]]:
    """Grant what ``campaign_code`` gives the member (caller holds the member's lock, inside the
    event's transaction). → ``{"granted": [codes], "exhausted": [codes]}``."""
    outcome: dict[str, list[str]] = {"granted": [], "exhausted": []}
    mappings = [
        (m.benefit_id, tuple(m.criteria))
        for m in CampaignBenefitMapping.objects.filter(tenant=tenant, campaign_code=campaign_code)
    ]
    if not mappings:
        return outcome
    wanted = campaign_benefits(
        catalog=benefit_catalog(tenant),
        mappings=mappings,
        campaign_code=campaign_code,
        now=now,
        criteria_hold=criteria_judge(tenant=tenant, member=member, now=now),
    )
    already = set(
        MemberBenefit.objects.filter(member=member, source=MemberBenefit.Source.CAMPAIGN, benefit_id__in=wanted)
        .filter(Q(source_ref=campaign_code) | Q(status=MemberBenefit.Status.ACTIVE))
        .values_list("benefit_id", flat=True)
    )
    benefits = Benefit.objects.in_bulk(set(wanted) - already)
    for benefit_id, entitlement in sorted(wanted.items()):
        if benefit_id in already:
            continue
        benefit = benefits[benefit_id]
        grant = grant_benefit(
            tenant=tenant,
            member=member,
            benefit=benefit,
            source=MemberBenefit.Source.CAMPAIGN,
            source_ref=campaign_code,
            actor=actor,
            now=now,
            reason=f"campaign {campaign_code}" + (f" via {', '.join(entitlement.via)}" if entitlement.via else ""),
        )
        outcome["granted" if grant else "exhausted"].append(benefit.code)
    return outcome
