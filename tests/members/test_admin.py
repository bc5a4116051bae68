"""The member pages of the portal: profiles, current tiers and tier history, and "Change tier…"."""

from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEntry
from events.registration import register_member
from members.models import Member, MemberEvent
from members.services import Registration
from outbox.models import OutboxMessage
from tests.factories import MemberFactory, TenantMembershipFactory, UserFactory, hotel_ladder
from tiers.assignments import change_member_tier
from tiers.models import MemberTierAssignment, MemberTierChange

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(tenant):
    """A staff user of tenant acme with every permission of the tiers and members apps."""
    user = UserFactory(username="anna")
    user.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["tiers", "members"]))
    TenantMembershipFactory(user=user, tenant=tenant)
    return user


@pytest.fixture
def logged_in(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def member(tenant, ladder):
    """u-1, registered through the service: holds the default tier "member" of the hotel ladder."""
    member, _ = register_member(
        tenant=tenant,
        registration=Registration(external_id="u-1", name="Ann Lee", email="ann@example.com"),
        actor="system",
    )
    return member


def member_url(view, member):
    return reverse(f"admin:members_member_{view}", args=[member.pk])


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def profile_form(member, **overrides):
    data = {
        "name": member.name,
        "email": member.email,
        "mobile": member.mobile,
        "status": member.status,
        "attributes": "{}",
        **{
            f"{prefix}-{k}": v
            for prefix in ("tier_assignments", "tier_changes")
            for k, v in (("TOTAL_FORMS", 0), ("INITIAL_FORMS", 0), ("MIN_NUM_FORMS", 0), ("MAX_NUM_FORMS", 1000))
        },
    }
    data.update(overrides)
    return data


def tier_form(tier, **overrides):
    data = {
        "tier": tier.pk,
        "source": "manual",
        "reason": "goodwill after a complaint",
        "lock_until_0": "",
        "lock_until_1": "",
        "expires_at_0": "",
        "expires_at_1": "",
    }
    data.update(overrides)
    return data


def counts():
    return (
        MemberTierChange.objects.count(),
        OutboxMessage.objects.count(),
        AuditEntry.objects.count(),
        list(MemberTierAssignment.objects.values_list("member_id", "tier__code", "source")),
    )


# --- pages render, scoped to the user's tenants ----------------------------------------------------
def test_members_admin_registers_exactly_member_and_its_events():
    assert {m for m in admin.site._registry if m._meta.app_label == "members"} == {Member, MemberEvent}


def test_member_pages_render_for_tenant_staff(logged_in, member, ladder):
    changelist = logged_in.get(reverse("admin:members_member_changelist"))
    assert changelist.status_code == 200
    assert list(changelist.context["cl"].queryset) == [member]
    assert "Hotel status: Member" in changelist.content.decode()  # current tiers column
    assert logged_in.get(reverse("admin:members_member_add")).status_code == 403  # registered via the API
    page = logged_in.get(member_url("change", member))
    assert page.status_code == 200
    assert member_url("change_tier", member) in page.content.decode()  # the "Change tier…" button
    (current, history) = page.context["inline_admin_formsets"]
    assert [f.original.tier.code for f in current] == ["member"]
    assert [(f.original.to_tier.code, f.original.reason) for f in history] == [("member", "default tier at enrollment")]
    assert logged_in.get(member_url("history", member)).status_code == 200
    assert logged_in.get(member_url("change_tier", member)).status_code == 200
    version = member.history.first().history_id
    assert logged_in.get(reverse("admin:members_member_simple_history", args=[member.pk, version])).status_code == 200
    assert logged_in.get(member_url("delete", member)).status_code == 403


def test_another_tenants_members_are_invisible(logged_in, member, other_tenant):
    _, theirs_tiers, _ = hotel_ladder(other_tenant)
    theirs = MemberFactory(tenant=other_tenant, external_id="g-1", name="Globex Guest")
    changelist = logged_in.get(reverse("admin:members_member_changelist"))
    assert list(changelist.context["cl"].queryset) == [member]
    assert b"Globex" not in changelist.content
    assert logged_in.get(member_url("change", theirs)).status_code == 302
    assert logged_in.get(member_url("history", theirs)).status_code == 404
    version = theirs.history.first().history_id
    assert logged_in.get(reverse("admin:members_member_simple_history", args=[theirs.pk, version])).status_code == 404
    assert logged_in.get(member_url("change_tier", theirs)).status_code == 404
    before = counts()
    assert logged_in.post(member_url("change_tier", theirs), tier_form(theirs_tiers["gold"])).status_code == 404
    assert counts() == before


def test_search_and_tier_filter(logged_in, member, ladder, tenant):
    _, tiers, _ = ladder
    other = MemberFactory(tenant=tenant, external_id="u-2", email="bob@example.com")
    change_member_tier(tenant=tenant, member=other, tier=tiers["gold"], reason="gift", actor="system")
    base = reverse("admin:members_member_changelist")
    assert list(logged_in.get(base, {"q": "bob@"}).context["cl"].queryset) == [other]
    gold = logged_in.get(base, {"tier_assignments__tier__id__exact": tiers["gold"].pk})
    assert list(gold.context["cl"].queryset) == [other]


# --- profile ---------------------------------------------------------------------------------------
def test_profile_edit_is_normalised_audited_and_keeps_external_id(logged_in, member):
    data = profile_form(
        member,
        email="ANN@Example.COM",
        mobile="+66 81-234-5678",
        external_id="hacked",
        status="suspended",
        attributes='{"country": "TH"}',
    )
    response = logged_in.post(member_url("change", member), data)
    assert response.status_code == 302
    member.refresh_from_db()
    assert (member.external_id, member.email, member.mobile, member.status, member.attributes) == (
        "u-1",
        "ann@example.com",
        "+66812345678",
        "suspended",
        {"country": "TH"},
    )
    # The email differs only in case: normalised, it is unchanged, so it is not listed as changed.
    entry = AuditEntry.objects.get(action="member.updated")
    assert (entry.actor, entry.member_id, entry.before, entry.after) == (
        "user:anna",
        "u-1",
        {"status": "active"},
        {"status": "suspended", "changed_fields": ["attributes", "mobile", "status"]},
    )
    assert member.history.first().history_user.username == "anna"


def test_profile_errors_are_shown_and_nothing_is_saved(logged_in, member):
    before = AuditEntry.objects.count()
    data = profile_form(member, email="not-an-email", mobile="12", status="erased", attributes="[1]")
    response = logged_in.post(member_url("change", member), data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"email", "mobile", "status", "attributes"}
    assert errors["mobile"] == ["Enter the number in international form, e.g. +66812345678."]
    assert errors["attributes"] == ['Must be a JSON object, e.g. {"country": "TH"}.']
    member.refresh_from_db()
    assert (member.email, member.status) == ("ann@example.com", "active")
    assert AuditEntry.objects.count() == before


# --- "Change tier…" --------------------------------------------------------------------------------
def test_manual_change_moves_the_member(logged_in, member, ladder):
    _, tiers, _ = ladder
    lock = timezone.now() + timedelta(days=30)
    outbox_before = set(OutboxMessage.objects.values_list("pk", flat=True))
    data = tier_form(tiers["platinum"], lock_until_0=lock.strftime("%Y-%m-%d"), lock_until_1="12:00:00")
    response = logged_in.post(member_url("change_tier", member), data)
    assert response.status_code == 302
    assert response["Location"] == member_url("change", member)
    assert messages_of(response) == ["u-1: Hotel status Member → Platinum (manual)."]
    assignment = MemberTierAssignment.objects.get(member=member)
    assert (assignment.tier, assignment.source) == (tiers["platinum"], "manual")
    assert assignment.lock_until is not None
    assert assignment.lock_until.date() == lock.date()
    change = MemberTierChange.objects.filter(member=member).first()  # newest first
    assert (change.from_tier, change.to_tier, change.source, change.reason, change.actor) == (
        tiers["member"],
        tiers["platinum"],
        "manual",
        "goodwill after a complaint",
        "user:anna",
    )
    assert change.lock_until == assignment.lock_until
    (message,) = OutboxMessage.objects.exclude(pk__in=outbox_before)
    assert (message.type, message.member_id) == ("tier.changed", "u-1")
    assert (message.data["from"], message.data["to"], message.data["source"]) == ("member", "platinum", "manual")
    entry = AuditEntry.objects.filter(action="member.tier_changed").order_by("at", "id").last()
    assert (entry.actor, entry.member_id, entry.reason) == ("user:anna", "u-1", "goodwill after a complaint")


def test_invitation_moves_the_member_up(logged_in, member, ladder):
    _, tiers, _ = ladder
    response = logged_in.post(member_url("change_tier", member), tier_form(tiers["gold"], source="invitation"))
    assert response.status_code == 302
    assert MemberTierAssignment.objects.get(member=member).tier == tiers["gold"]
    assert MemberTierChange.objects.filter(member=member).first().source == "invitation"


@pytest.mark.parametrize(
    ("overrides", "errors"),
    [
        ({"reason": ""}, {"reason": ["This field is required."]}),
        ({"reason": "   "}, {"reason": ["This field is required."]}),
        (
            {"lock_until_0": "2000-01-01", "lock_until_1": "00:00:00"},
            {"lock_until": ["Must be in the future."]},
        ),
        ({"source": "auto"}, {"source": ["Select a valid choice. auto is not one of the available choices."]}),
    ],
    ids=["empty-reason", "blank-reason", "lock-in-the-past", "source-auto"],
)
def test_change_tier_form_errors_change_nothing(logged_in, member, ladder, overrides, errors):
    _, tiers, _ = ladder
    before = counts()
    response = logged_in.post(member_url("change_tier", member), tier_form(tiers["gold"], **overrides))
    assert response.status_code == 200
    assert response.context["form"].errors == errors
    assert counts() == before


def test_downward_invitation_is_refused_with_the_reason(logged_in, member, ladder, tenant):
    _, tiers, _ = ladder
    change_member_tier(tenant=tenant, member=member, tier=tiers["gold"], reason="gift", actor="system")
    before = counts()
    response = logged_in.post(member_url("change_tier", member), tier_form(tiers["silver"], source="invitation"))
    assert response.status_code == 200
    assert response.context["form"].errors == {
        "__all__": ["The member already holds gold (rank 3); silver (rank 2) is not higher."]
    }
    assert "is not higher." in response.content.decode()
    assert counts() == before


def test_invitation_out_of_an_immutable_tier_is_refused(logged_in, member, ladder, tenant):
    _, tiers, _ = ladder
    tiers["gold"].immutable = True
    tiers["gold"].save()
    change_member_tier(tenant=tenant, member=member, tier=tiers["gold"], reason="gift", actor="system")
    before = counts()
    response = logged_in.post(member_url("change_tier", member), tier_form(tiers["platinum"], source="invitation"))
    assert response.status_code == 200
    assert response.context["form"].errors == {
        "__all__": ["The member's current tier is immutable: invitations cannot move them out of it."]
    }
    assert counts() == before


def test_tiers_offered_are_those_of_active_tier_types_of_the_members_tenant(logged_in, member, other_tenant, tenant):
    _, theirs, _ = hotel_ladder(other_tenant)
    _, inactive, _ = hotel_ladder(tenant, code="retired", active=False)
    page = logged_in.get(member_url("change_tier", member))
    html = page.content.decode()
    assert '<form method="post" id="change_tier_form" novalidate>' in html
    assert '<input type="submit" value="Change tier" class="default" name="_save">' in html
    assert "&rsaquo; Change tier" in html
    offered = [str(choice[1]) for choice in page.context["form"].fields["tier"].choices][1:]
    assert offered == [
        "Hotel status: Member (rank 1)",
        "Hotel status: Silver (rank 2)",
        "Hotel status: Gold (rank 3)",
        "Hotel status: Platinum (rank 4)",
    ]
    before = counts()
    for tier in (theirs["gold"], inactive["gold"]):
        response = logged_in.post(member_url("change_tier", member), tier_form(tier))
        assert response.status_code == 200
        assert list(response.context["form"].errors) == ["tier"]
    assert counts() == before


def test_change_tier_needs_change_permission(client, tenant, member, ladder):
    _, tiers, _ = ladder
    viewer = UserFactory(username="victor")
    viewer.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    TenantMembershipFactory(user=viewer, tenant=tenant)
    client.force_login(viewer)
    page = client.get(member_url("change", member))
    assert page.status_code == 200
    assert member_url("change_tier", member) not in page.content.decode()
    assert client.get(member_url("change_tier", member)).status_code == 403
    before = counts()
    assert client.post(member_url("change_tier", member), tier_form(tiers["gold"])).status_code == 403
    assert counts() == before


def test_change_tier_needs_login(client, member):
    response = client.get(member_url("change_tier", member))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_the_member_page_answers_which_tier_the_member_held_on_a_day(logged_in, member, ladder):
    """ "Tier on a date": the tiers held at the end of that day in the tenant's time (Bangkok), from the
    tier history; a day before registration shows none; a future or malformed day says why."""
    import re
    from datetime import datetime
    from zoneinfo import ZoneInfo

    bangkok = ZoneInfo("Asia/Bangkok")
    change_member_tier(tenant=member.tenant, member=member, tier=ladder[1]["gold"], reason="match", actor="system")
    today = timezone.now().astimezone(bangkok).date()
    registered = datetime.combine(today - timedelta(days=20), datetime.min.time(), tzinfo=bangkok).replace(hour=9)
    promoted = datetime.combine(today - timedelta(days=5), datetime.min.time(), tzinfo=bangkok).replace(hour=23)
    rows = list(MemberTierChange.objects.filter(member=member).order_by("at", "id"))
    MemberTierChange.objects.filter(pk=rows[0].pk).update(at=registered)
    MemberTierChange.objects.filter(pk=rows[1].pk).update(at=promoted)

    def answer(day) -> str:
        html = logged_in.get(member_url("change", member) + f"?tier_on={day}").content.decode()
        return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html.split('id="tier-on-date"')[1]))

    before = answer(today - timedelta(days=6))
    assert f"Tiers held at the end of {today - timedelta(days=6)} (Asia/Bangkok)" in before
    assert f"Hotel status Member {registered:%Y-%m-%d} 09:00 qualified (automatic)" in before
    # promoted at 23:00 Bangkok time: the end of that local day sees Gold (16:00 UTC, same day)
    assert f"Hotel status Gold {promoted:%Y-%m-%d} 23:00 manual change" in answer(today - timedelta(days=5))
    assert "No tier held at the end of" in answer(today - timedelta(days=21))
    assert "Pick today or a past day" in answer(today + timedelta(days=1))
    assert "Enter a date as YYYY-MM-DD." in answer("yesterday")
    assert "Tier on a date" in logged_in.get(member_url("change", member)).content.decode()


def test_export_downloads_the_members_document_and_erase_asks_for_a_reason_and_a_confirmation(
    logged_in, member, client, tenant
):
    page = logged_in.get(member_url("change", member)).content.decode()
    assert "Export data" in page
    assert "Erase personal data…" in page
    download = logged_in.get(member_url("export", member))
    assert download.status_code == 200
    assert download["Content-Disposition"] == 'attachment; filename="member-u-1-export.json"'
    document = download.json()
    assert (document["profile"]["external_id"], document["profile"]["email"]) == ("u-1", "ann@example.com")

    refused = logged_in.post(member_url("erase", member), {"reason": "request"})  # not confirmed
    assert refused.status_code == 200
    assert "This field is required." in refused.content.decode()
    member.refresh_from_db()
    assert member.status == "active"

    done = logged_in.post(member_url("erase", member), {"reason": "request of 2026-12-01", "confirm": "on"})
    assert done.status_code == 302
    assert messages_of(done) == ["u-1: personal data erased."]
    member.refresh_from_db()
    assert (member.status, member.name, member.email) == ("erased", "", "")
    assert AuditEntry.objects.filter(action="member.erased", reason="request of 2026-12-01").count() == 1
    page = logged_in.get(member_url("change", member)).content.decode()
    assert "Erase personal data…" not in page


def test_export_and_erase_need_change_permission_and_the_members_tenant(client, tenant, member, other_tenant):
    viewer = UserFactory(username="viewer")
    viewer.user_permissions.set(Permission.objects.filter(codename="view_member"))
    TenantMembershipFactory(user=viewer, tenant=tenant)
    client.force_login(viewer)
    assert client.get(member_url("export", member)).status_code == 403
    assert client.post(member_url("erase", member), {"reason": "x", "confirm": "on"}).status_code == 403
    outsider = UserFactory(username="outsider")
    outsider.user_permissions.set(Permission.objects.filter(content_type__app_label="members"))
    TenantMembershipFactory(user=outsider, tenant=other_tenant)
    client.force_login(outsider)
    assert client.get(member_url("export", member)).status_code == 404
    assert client.post(member_url("erase", member), {"reason": "x", "confirm": "on"}).status_code == 404
    member.refresh_from_db()
    assert member.status == "active"
