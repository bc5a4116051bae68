"""The reconciliation pages of the admin: "Reconcile now" starts a run of the staff user's program, the
run page says in words what was found and repaired; another tenant's run is "not found"."""

import re
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from members.models import Member
from reconciliation.models import ReconciliationRun
from tests.factories import TenantMembershipFactory, UserFactory
from tests.simulation.program import build_program, populate
from tiers.models import MemberTierAssignment, Tier

pytestmark = pytest.mark.django_db
START = reverse("admin:reconciliation_reconciliationrun_start")
LIST = reverse("admin:reconciliation_reconciliationrun_changelist")


def text(response: Any) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


@pytest.fixture
def logged_in(client: Any, tenant: Any) -> Any:
    user = UserFactory(username="anna")
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="reconciliation"))
    TenantMembershipFactory(user=user, tenant=tenant)
    client.force_login(user)
    return client


def test_reconcile_now_finds_a_wrong_tier_and_says_so_in_words(
    logged_in, tenant, eager_tasks, django_capture_on_commit_callbacks
):
    made = build_program(tenant)
    populate(tenant, made, members=8, seed=3)
    member = Member.objects.filter(tenant=tenant).order_by("pk").first()
    held = MemberTierAssignment.objects.select_related("tier").get(member=member, tier_type=made["hotel"]).tier
    wrong = Tier.objects.filter(tier_type=made["hotel"]).exclude(pk=held.pk).order_by("rank").first()
    MemberTierAssignment.objects.filter(member=member, tier_type=made["hotel"]).update(tier=wrong)
    form = text(logged_in.get(START))
    assert "Points per event Tiers Tier benefits Point Service and IAM syncs Outbox deliveries" in form
    assert "Repair what is found" in form
    assert "Reconcile now" in text(logged_in.get(LIST))
    with django_capture_on_commit_callbacks(execute=True):
        response = logged_in.post(START, {"tenant": tenant.pk, "checks": ["tiers", "points"], "members": ""})
    run = ReconciliationRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:reconciliation_reconciliationrun_change", args=[run.pk])
    page = text(logged_in.get(response["Location"]))
    local = timezone.localtime(run.created_at, ZoneInfo("Asia/Bangkok"))
    assert f"Check only of {local:%d %b %Y, %H:%M} (Bangkok time)" in page  # the program's time
    assert "Finished" in page
    assert "8 of 8 members checked" in page
    assert "Tiers 1 0" in page
    assert "Points per event 0 0" in page
    assert "Discrepancies (1)" in page
    what = "Holds another tier than the event log gives"
    assert f"{member.external_id} Tiers {what} Hotel status {held.name} {wrong.name} no" in page  # names, not codes
    listing = text(logged_in.get(LIST))
    assert "Check only Finished 8 of 8 members 1 0 anna" in listing


def test_the_form_refuses_a_second_run_and_unknown_members_and_another_tenants_run_is_not_found(
    logged_in, tenant, other_tenant
):
    Member.objects.create(tenant=tenant, external_id="ann", registered_at="2026-01-01T00:00:00Z")
    page = text(logged_in.post(START, {"tenant": tenant.pk, "checks": ["points"], "members": "ann, nobody"}))
    assert "No member nobody." in page
    assert not ReconciliationRun.objects.exists()
    ReconciliationRun.objects.create(tenant=tenant, checks=["points"])  # queued
    page = text(logged_in.post(START, {"tenant": tenant.pk, "checks": ["points"], "members": ""}))
    assert "A reconciliation of this program is already queued or running." in page
    assert ReconciliationRun.objects.count() == 1
    theirs = ReconciliationRun.objects.create(tenant=other_tenant, checks=["points"], status="done")
    url = reverse("admin:reconciliation_reconciliationrun_change", args=[theirs.pk])
    assert logged_in.get(url).status_code == 404
    assert logged_in.post(START, {"tenant": other_tenant.pk, "checks": ["points"]}).status_code == 200
    assert not ReconciliationRun.objects.filter(tenant=other_tenant, status="queued").exists()
