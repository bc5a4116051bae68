"""The periodic tier review (DOMAIN §3.4): demotions whose validity and grace ran out, expired manual
assignments and ended time-bound tiers, for members who sent no event to trigger them.

Chunked by member id and resumable: each tenant's run of a local day keeps a cursor
(:class:`tiers.models.TierReview`), so an interrupted run continues where it stopped and a finished one
is not redone. A PostgreSQL advisory lock keeps two runs (two beats, or beat and the command) apart.
"""

from collections.abc import Callable
from datetime import date
from zoneinfo import ZoneInfo

from django.db.models import F
from django.utils import timezone

from config.db import advisory_lock
from events.evaluation import REVIEW_KINDS, evaluate_member_now
from members.models import Member
from tenancy.models import Tenant
from tiers.models import TierReview

Progress = Callable[[Tenant, int, int], None]


def review_tenant(
    *, tenant: Tenant, run_date: date | None = None, chunk_size: int = 500, progress: Progress | None = None
) -> TierReview:
    """Review every active member of ``tenant`` once for ``run_date`` (default: today in tenant time)."""
    run_date = run_date or timezone.now().astimezone(ZoneInfo(tenant.timezone)).date()
    review, _ = TierReview.objects.get_or_create(tenant=tenant, run_date=run_date)
    if review.finished_at is not None:
        return review
    members = Member.objects.filter(tenant=tenant, status=Member.Status.ACTIVE).order_by("pk")
    total = members.count()
    done = members.filter(pk__lte=review.last_member_pk).count()
    while True:
        chunk = list(members.filter(pk__gt=review.last_member_pk)[:chunk_size])
        if not chunk:
            break
        changes = 0
        for member in chunk:
            changes += len(
                evaluate_member_now(
                    tenant=tenant, member=member, actor="system:review", kinds=REVIEW_KINDS, source="review"
                )
            )
        TierReview.objects.filter(pk=review.pk).update(
            last_member_pk=chunk[-1].pk,
            members_reviewed=F("members_reviewed") + len(chunk),
            changes=F("changes") + changes,
        )
        review.refresh_from_db()
        done += len(chunk)
        if progress:
            progress(tenant, done, total)
    TierReview.objects.filter(pk=review.pk).update(finished_at=timezone.now())
    review.refresh_from_db()
    return review


def review_all(*, chunk_size: int = 500, progress: Progress | None = None) -> list[TierReview] | None:
    """Review every active tenant; None when another run holds the lock."""
    with advisory_lock("tiers.review") as acquired:
        if not acquired:
            return None
        return [
            review_tenant(tenant=tenant, chunk_size=chunk_size, progress=progress)
            for tenant in Tenant.objects.filter(active=True).order_by("pk")
        ]
