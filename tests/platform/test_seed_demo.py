"""``manage.py seed_demo``: the demo program loads, through the services, and is idempotent."""

import logging
from io import StringIO

import pytest
from django.core.management import call_command

from audit.models import AuditEntry
from benefits.models import Benefit, EventCode, MemberBenefit, TierBenefitMapping
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
    # Benefits: mapped up the hotel ladder before the members registered, so every grant follows tiers.
    assert sorted(Benefit.objects.values_list("code", flat=True)) == [
        "dining-voucher",
        "late-checkout",
        "lounge-access",
        "spa-voucher",
        "voucher-bundle",
        "welcome-gift",
    ]
    assert sorted(TierBenefitMapping.objects.values_list("benefit__code", "tier__code", "inheritable")) == [
        ("late-checkout", "gold", True),
        ("lounge-access", "platinum", True),
        ("voucher-bundle", "silver", True),
        ("welcome-gift", "member", True),
    ]
    assert list(EventCode.objects.values_list("code", "action", "tier__code", "max_redemptions")) == [
        ("VIPINVITE2027", "promote_tier", "diamond", 1)
    ]
    ranks = dict(
        MemberTierAssignment.objects.filter(tier_type__code="hotel").values_list("member__external_id", "tier__rank")
    )

    def holders(code: str) -> set[str]:
        grants = MemberBenefit.objects.filter(benefit__code=code, status="active")
        return set(grants.values_list("member__external_id", flat=True))

    assert holders("late-checkout") == {m for m, rank in ranks.items() if rank >= 3}
    assert holders("lounge-access") == {m for m, rank in ranks.items() if rank >= 4}
    assert holders("dining-voucher") == holders("spa-voucher") >= {m for m, rank in ranks.items() if rank >= 2}
    assert holders("welcome-gift") == set(ranks)  # the first 100 members: all 40
    assert Benefit.objects.get(code="welcome-gift").granted_count == 40
    assert not MemberBenefit.objects.filter(benefit__code="voucher-bundle").exists()  # its components are granted
    grants = MemberBenefit.objects.count()
    counts = (TierType.objects.count(), Tier.objects.count(), Member.objects.count(), AuditEntry.objects.count())
    again = _seed(settings, tmp_path)
    assert MemberBenefit.objects.count() == grants
    assert (
        TierType.objects.count(),
        Tier.objects.count(),
        Member.objects.count(),
        AuditEntry.objects.count(),
    ) == counts
    assert password in again  # the same login every time


def test_seed_demo_prints_the_address_it_is_given_and_keeps_task_logs_out(settings, tmp_path, caplog):
    settings.DATA_DIR = tmp_path
    out = StringIO()
    with caplog.at_level("INFO"):
        call_command("seed_demo", "--members", "5", "--address", "http://127.0.0.1:8099", stdout=out)
    output = out.getvalue()
    assert "  Admin:    http://127.0.0.1:8099/admin/" in output
    assert "  API docs: http://127.0.0.1:8099/api/v1/docs" in output
    assert "8000" not in output
    assert [r for r in caplog.records if r.levelno < 30] == []  # no INFO lines from the seeding's tasks
    assert logging.getLogger("privilege").isEnabledFor(logging.INFO)  # logging is back on afterwards
