"""``manage.py seed_demo``: the demo program loads, through the services, and is idempotent."""

from io import StringIO

import pytest
from django.core.management import call_command

from audit.models import AuditEntry
from members.models import Member
from tiers.models import MemberTierAssignment, PromotionRule, Tier, TierType

pytestmark = pytest.mark.django_db


def _seed(settings, tmp_path) -> str:
    settings.DATA_DIR = tmp_path
    out = StringIO()
    call_command("seed_demo", "--members", "40", stdout=out)
    return out.getvalue()


def test_seed_demo_builds_a_program_and_is_idempotent(settings, tmp_path):
    output = _seed(settings, tmp_path)
    assert "Login:    admin / " in output
    password = (tmp_path / "admin-password.txt").read_text().strip()
    assert password in output
    assert sorted(TierType.objects.values_list("code", flat=True)) == ["hotel", "partner-card"]
    assert list(Tier.objects.filter(tier_type__code="hotel").values_list("code", flat=True)) == [
        "member",
        "silver",
        "gold",
        "platinum",
        "diamond",
    ]
    assert PromotionRule.objects.filter(status="active").count() == 6
    assert Member.objects.count() == 40
    # Every member holds a tier in each active tier type.
    assert MemberTierAssignment.objects.count() == 80
    assert AuditEntry.objects.filter(action="member.registered").count() == 40
    from points.models import PointTransaction

    assert PointTransaction.objects.filter(kind="welcome").count() == 40
    assert PointTransaction.objects.filter(kind="earn").count() > 200  # a year of stays earned points
    counts = (TierType.objects.count(), Tier.objects.count(), Member.objects.count(), AuditEntry.objects.count())
    again = _seed(settings, tmp_path)
    assert (
        TierType.objects.count(),
        Tier.objects.count(),
        Member.objects.count(),
        AuditEntry.objects.count(),
    ) == counts
    assert password in again  # the same login every time
