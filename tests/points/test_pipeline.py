"""Points in the event pipeline (DOMAIN §4): awarded in the event's transaction at the tier held before
it, capped per bucket of tenant time, reversed pro rata by refunds, welcome points at registration."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from members.models import Member, MemberEvent, MetricDay
from outbox.models import OutboxMessage
from points.models import PointBucket, PointConversionRule, PointModifier, PointPolicy, PointTransaction
from tests.concurrency import race
from tests.factories import TenantFactory, hotel_ladder
from tests.helpers import assert_problem

URL = "/api/v1/member/ann/event"


def _rule(tenant, hotel=None, **fields):
    base = {
        "tenant": tenant,
        "code": "base",
        "base": "per_amount",
        "unit_amount": Decimal("1.00"),
        "points_per_unit": 10,
        "tier_type": hotel,
        "event_types": ["transaction"],
    }
    rule = PointConversionRule.objects.create(**{**base, **fields})
    tenant.bump_config_version()
    return rule


def buy(event_id: str, amount: str, when=None, **extra) -> dict:
    when = when or timezone.now() - timedelta(hours=1)
    return {
        "event_id": event_id,
        "source": "pos",
        "type": "transaction",
        "occurred_at": when.isoformat(),
        "amount": amount,
        "quantities": {"nights": 1},
        **extra,
    }


@pytest.fixture
def program(tenant):
    tenant.timezone = "Asia/Bangkok"
    tenant.save()
    hotel, tiers, _ = hotel_ladder(tenant)  # gold needs 25 nights; gold multiplies points by 1.50
    return hotel, tiers


@pytest.fixture
def ann(api, program):
    api.post("/api/v1/member", {"external_id": "ann"}, format="json")
    return Member.objects.get(external_id="ann")


@pytest.mark.django_db
def test_event_earns_points_with_breakdown_message_and_points_metric(api, tenant, program, ann):
    hotel, _ = program
    _rule(tenant, hotel)
    body = api.post(URL, buy("e1", "250.75"), format="json").json()
    (tx,) = PointTransaction.objects.filter(member=ann)
    assert body["points"] == {
        "total": 2500,
        "transactions": [
            {
                "id": tx.pk,
                "kind": "earn",
                "rule": "base",
                "base": 2500,
                "multipliers": {"tier": "1.00"},
                "modifiers": [],
                "uncapped": 2500,
                "points": 2500,
                "capped_by": None,
            }
        ],
    }
    assert (tx.kind, tx.points, tx.event.event_id) == ("earn", 2500, "e1")
    message = OutboxMessage.objects.get(type="points.applied")
    assert (message.data["total"], message.member_id) == (2500, "ann")
    assert sum(MetricDay.objects.filter(member=ann, metric="points").values_list("value", flat=True)) == (
        2500 * MetricDay.SCALE
    )


@pytest.mark.django_db
def test_points_first_then_tiers(api, tenant, program, ann):
    hotel, _ = program
    _rule(tenant, hotel)
    promoting = buy("e1", "100.00") | {"quantities": {"nights": 30}}
    first = api.post(URL, promoting, format="json").json()
    assert (first["points"]["total"], first["tier_changes"][0]["to"]) == (1000, "gold")  # earned at member (1.00)
    second = api.post(URL, buy("e2", "100.00"), format="json").json()
    assert second["points"]["total"] == 1500  # now at gold (1.50)


@pytest.mark.django_db
def test_daily_cap_in_tenant_time(api, tenant, program, ann):
    _rule(tenant, None, cap_per_day=1000)
    late = timezone.now().astimezone(timezone.get_fixed_timezone(420)).replace(hour=23, minute=30) - timedelta(days=2)
    results = [
        api.post(URL, buy("a", "60.00", when=late), format="json").json()["points"]["transactions"][0],
        api.post(URL, buy("b", "60.00", when=late + timedelta(minutes=20)), format="json").json()["points"][
            "transactions"
        ][0],
        # 00:20 the next day in Bangkok (still the same UTC day): a new daily bucket.
        api.post(URL, buy("c", "60.00", when=late + timedelta(minutes=50)), format="json").json()["points"][
            "transactions"
        ][0],
    ]
    assert [(r["uncapped"], r["points"], r["capped_by"]) for r in results] == [
        (600, 600, None),
        (600, 400, "rule:day"),
        (600, 600, None),
    ]
    day = late.date().isoformat()
    rule_id = PointConversionRule.objects.get().pk
    assert PointBucket.objects.get(member=ann, key=f"rule:{rule_id}:day:{day}").total == 1000


@pytest.mark.django_db
def test_a_late_event_takes_its_share_first_and_later_days_are_adjusted(api, tenant, program, ann):
    """Day cap 1,000 inside week cap 1,500 (DOMAIN §4.4), caps allocated in ``occurred_at`` order:
    Tuesday's 1,000 points are posted first; Monday's purchase arrives late and, occurring first, takes
    its full 1,000, so Tuesday is adjusted down to what the week has left (500)."""
    rule = _rule(tenant, None, cap_per_day=1000, cap_per_week=1500)
    bangkok = timezone.get_fixed_timezone(420)
    today = timezone.now().astimezone(bangkok)
    monday = (today - timedelta(days=today.weekday() + 7)).replace(hour=12, minute=0, second=0, microsecond=0)
    tuesday = monday + timedelta(days=1)
    first = api.post(URL, buy("tue", "100.00", when=tuesday), format="json").json()["points"]
    late = api.post(URL, buy("mon", "100.00", when=monday), format="json").json()["points"]

    assert (first["total"], first["transactions"][0]["capped_by"]) == (1000, None)
    assert (late["total"], late["transactions"][0]["points"], late["transactions"][0]["capped_by"]) == (
        1000,
        1000,
        None,
    )
    tue = MemberEvent.objects.get(event_id="tue")
    adjustment = PointTransaction.objects.get(kind="adjustment")
    assert (adjustment.event_id, adjustment.rule_id, adjustment.points, adjustment.capped_by) == (
        tue.pk,
        rule.pk,
        -500,
        "rule:week",
    )
    week = f"{monday.isocalendar()[0]}-W{monday.isocalendar()[1]:02d}"
    buckets = dict(
        PointBucket.objects.filter(member=ann, key__startswith=f"rule:{rule.pk}:")
        .exclude(key__contains=":month:")  # Monday and Tuesday may straddle a month
        .values_list("key", "total")
    )
    assert buckets == {
        f"rule:{rule.pk}:day:{monday.date()}": 1000,
        f"rule:{rule.pk}:day:{tuesday.date()}": 500,
        f"rule:{rule.pk}:week:{week}": 1500,
    }
    points_by_day = {
        str(day): value / MetricDay.SCALE
        for day, value in MetricDay.objects.filter(member=ann, metric="points").values_list("day", "value")
    }
    assert points_by_day == {str(monday.date()): 1000, str(tuesday.date()): 500}
    message = OutboxMessage.objects.filter(type="points.adjusted").get()
    assert (message.data["caused_by"], message.data["total"]) == ("mon", -500)
    assert [t["event_id"] for t in message.data["transactions"]] == ["tue"]
    # Wednesday: its day is empty but the week is full, so it gets nothing and nothing else moves.
    again = api.post(URL, buy("wed", "10.00", when=monday + timedelta(days=2)), format="json").json()["points"]
    assert (again["total"], again["transactions"][0]["capped_by"]) == (0, "rule:week")
    assert PointTransaction.objects.filter(kind="adjustment").count() == 1


@pytest.mark.django_db
def test_refunds_reverse_pro_rata_and_never_more_than_awarded(api, tenant, program, ann):
    _rule(tenant, None)
    api.post(URL, buy("buy", "100.00"), format="json")  # 1000 points
    refund = {"source": "pos", "type": "refund", "occurred_at": timezone.now().isoformat(), "refund_of": "buy"}
    first = api.post(URL, refund | {"event_id": "r1", "amount": "33.33"}, format="json").json()
    assert first["points"]["total"] == -333  # floor(1000 × 33.33 / 100)
    second = api.post(URL, refund | {"event_id": "r2", "amount": "66.67"}, format="json").json()
    assert second["points"]["total"] == -667  # the rest, exactly
    assert sum(PointTransaction.objects.filter(member=ann).values_list("points", flat=True)) == 0
    over = api.post(URL, refund | {"event_id": "r3", "amount": "0.01"}, format="json")
    assert_problem(over, 422, "validation_error")
    assert OutboxMessage.objects.filter(type="points.reverted").count() == 2
    assert sum(MetricDay.objects.filter(member=ann, metric="points").values_list("value", flat=True)) == 0


@pytest.mark.django_db
def test_welcome_points_at_registration(api, tenant, program):
    PointPolicy.objects.create(tenant=tenant, welcome_points=500)
    api.post("/api/v1/member", {"external_id": "newbie"}, format="json")
    (tx,) = PointTransaction.objects.filter(member__external_id="newbie")
    assert (tx.kind, tx.points) == ("welcome", 500)
    assert OutboxMessage.objects.filter(type="points.applied", member_id="newbie").count() == 1


@pytest.mark.django_db
def test_no_points_for_suspended_members(api, tenant, program, ann):
    _rule(tenant, None)
    Member.objects.filter(pk=ann.pk).update(status="suspended")
    assert api.post(URL, buy("e1", "100.00"), format="json").json()["points"] == {"total": 0, "transactions": []}
    assert PointTransaction.objects.count() == 0


def _ingest(tenant, member_id: str, body: dict):
    from events.ingestion import ingest_event
    from members.api.serializers import EventInputSerializer

    serializer = EventInputSerializer(data=body)
    serializer.is_valid(raise_exception=True)
    return ingest_event(tenant=tenant, member_id=member_id, data=dict(serializer.validated_data), actor="t")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_50_threads_under_a_daily_cap_reach_it_exactly():
    from events.registration import register_member
    from members.services import Registration

    tenant = TenantFactory(slug="capped", timezone="Asia/Bangkok")
    hotel_ladder(tenant)
    _rule(tenant, None, cap_per_day=10_000)
    register_member(tenant=tenant, registration=Registration(external_id="hot"), actor="t")
    when = timezone.now() - timedelta(days=1)
    results = race(50, lambda i: _ingest(tenant, "hot", buy(f"e{i}", "33.00", when=when)))
    assert all(isinstance(r, tuple) for r in results), results
    assert MemberEvent.objects.filter(status="processed").count() == 50
    assert sum(PointTransaction.objects.values_list("points", flat=True)) == 10_000  # 50 × 330 = 16,500 asked


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_campaign_pool_across_members_is_never_overdrawn():
    from events.registration import register_member
    from members.services import Registration

    tenant = TenantFactory(slug="pool", timezone="Asia/Bangkok")
    hotel_ladder(tenant)
    rule = _rule(tenant, None)
    PointModifier.objects.create(tenant=tenant, code="double", multiplier=Decimal(2), campaign_total=5_000)
    tenant.bump_config_version()
    for i in range(20):
        register_member(tenant=tenant, registration=Registration(external_id=f"m{i}"), actor="t")
    results = race(20, lambda i: _ingest(tenant, f"m{i}", buy(f"e{i}", "40.00")))
    assert all(isinstance(r, tuple) for r in results), results
    # Each event: 400 plain + up to 400 of campaign uplift; the pool gives 5,000 uplift in all.
    assert sum(PointTransaction.objects.filter(rule=rule).values_list("points", flat=True)) == 20 * 400 + 5_000
    assert PointModifier.objects.get().pool_used == 5_000


@pytest.mark.django_db
def test_member_points_balance_windows_and_transactions(api, tenant, program, ann):
    _rule(tenant, None, cap_per_day=100_000)
    api.post(URL, buy("e1", "10.00"), format="json")
    api.post(URL, buy("e2", "20.00"), format="json")
    body = api.get("/api/v1/member/ann/points", {"page_size": 1}).json()
    assert (body["total"], body["count"]) == (300, 2)
    assert body["window_totals"]["month"] in (0, 300)  # the events were an hour ago: this month, unless it just began
    assert [t["points"] for t in body["transactions"]] == [200]
    assert body["next"].endswith("page=2&page_size=1")
    assert_problem(api.get("/api/v1/member/ghost/points"), 404, "member_not_found")


@pytest.mark.django_db
def test_calculate_quotes_without_recording(api, tenant, program, ann):
    hotel, _ = program
    _rule(tenant, hotel, cap_per_event=3000)
    api.put("/api/v1/member/ann/tier", {"tier_type": "hotel", "tier": "gold", "reason": "VIP"}, format="json")
    quote = api.post("/api/v1/member/ann/points/calculate", buy("q1", "250.00"), format="json")
    assert quote.status_code == 200
    assert quote.json() == {
        "total": 3000,
        "transactions": [
            {
                "rule": "base",
                "base": "2500.0000",
                "tier_multiplier": "1.50",
                "modifiers": [],
                "uncapped": 3750,
                "points": 3000,
                "capped_by": "rule:event",
            }
        ],
    }
    assert PointTransaction.objects.count() == 0
    assert MemberEvent.objects.count() == 0
    assert_problem(
        api.post("/api/v1/member/ann/points/calculate", {"type": "x"}, format="json"), 422, "validation_error"
    )


@pytest.mark.django_db
def test_rollback_reverses_a_transaction_exactly_once(api, tenant, program, ann):
    from audit.models import AuditEntry
    from points.services import AlreadyReversed, ReversalNotReversible, rollback_point_transaction

    _rule(tenant, None, cap_per_day=100_000)
    api.post(URL, buy("e1", "30.00"), format="json")
    tx = PointTransaction.objects.get(kind="earn")
    reversal = rollback_point_transaction(tenant=tenant, tx=tx, actor="user:ops", reason="fraud check")
    assert (reversal.kind, reversal.points, reversal.reversal_of_id) == ("reversal", -300, tx.pk)
    assert sum(PointTransaction.objects.values_list("points", flat=True)) == 0
    assert sum(PointBucket.objects.filter(member=ann).values_list("total", flat=True)) == 0
    assert sum(MetricDay.objects.filter(member=ann, metric="points").values_list("value", flat=True)) == 0
    assert AuditEntry.objects.filter(action="points.rolled_back", reason="fraud check").count() == 1
    assert OutboxMessage.objects.filter(type="points.reverted").count() == 1
    with pytest.raises(AlreadyReversed) as again:
        rollback_point_transaction(tenant=tenant, tx=tx, actor="user:ops", reason="again")
    with pytest.raises(ReversalNotReversible) as undo:
        rollback_point_transaction(tenant=tenant, tx=reversal, actor="user:ops", reason="undo the undo")
    assert (again.value.status, again.value.code) == (409, "already_reversed")
    assert (undo.value.status, undo.value.code) == (409, "reversal_not_reversible")
    assert PointTransaction.objects.count() == 2
