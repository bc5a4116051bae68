"""``POST /member/{memberId}/event`` and the evaluation pipeline (DOMAIN §7, §3.4)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from events.metrics_rebuild import rebuild_metrics
from members.models import Member, MemberEvent, MetricDay
from outbox.models import OutboxMessage
from tests.factories import MemberFactory, hotel_ladder
from tests.helpers import assert_problem
from tiers.metrics import daily_metrics
from tiers.models import MemberTierAssignment, MemberTierChange

pytestmark = pytest.mark.django_db

URL = "/api/v1/member/ann/event"


def stay(event_id: str = "pos-1", nights: int = 30, when=None, **extra) -> dict:
    when = when or timezone.now() - timedelta(hours=1)
    return {
        "event_id": event_id,
        "source": "pos",
        "type": "transaction",
        "occurred_at": when.isoformat(),
        "amount": "250.00",
        "currency": "USD",
        "quantities": {"nights": nights, "stays": 1},
        **extra,
    }


def metric_totals(member) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for metric, value in MetricDay.objects.filter(member=member).values_list("metric", "value"):
        totals[metric] = totals.get(metric, Decimal(0)) + Decimal(value) / MetricDay.SCALE
    return {k: v for k, v in totals.items() if v}


def tier_of(member) -> str:
    return MemberTierAssignment.objects.get(member=member).tier.code


def test_event_is_evaluated_synchronously_and_promotes(api, ann):
    response = api.post(URL, stay(), format="json", HTTP_X_REQUEST_ID="evt-1")
    assert response.status_code == 201
    body = response.json()
    event = MemberEvent.objects.get()
    assert body["id"] == event.pk
    assert (body["event_id"], body["status"]) == ("pos-1", "processed")
    assert body["points"] == {"total": 0, "transactions": []}
    assert body["benefits"] == {"granted": [], "revoked": []}
    assert [(c["tier_type"], c["from"], c["to"], c["kind"], c["rule"]) for c in body["tier_changes"]] == [
        ("hotel", "member", "gold", "promotion", "hotel-gold-by-nights")
    ]
    assert metric_totals(ann) == {
        "spend": Decimal("250"),
        "transactions": 1,
        "quantity:nights": 30,
        "quantity:stays": 1,
        "events:transaction": 1,
    }
    assert tier_of(ann) == "gold"
    change = MemberTierChange.objects.filter(member=ann, to_tier__code="gold").get()
    assert (change.event_ref, change.rule.code, change.source, change.correlation_id) == (
        "pos:pos-1",
        "hotel-gold-by-nights",
        "auto",
        "evt-1",
    )
    message = OutboxMessage.objects.filter(type="tier.changed", data__to="gold").get()
    assert message.data["rule"] == "hotel-gold-by-nights"
    assert event.counted is True
    assert Member.objects.get(pk=ann.pk).last_event_at == event.occurred_at


def test_replay_returns_the_original_and_has_no_second_effect(api, ann):
    body = stay(when=timezone.now() - timedelta(days=1))
    one = api.post(URL, body, format="json")
    two = api.post(URL, body, format="json")
    assert (one.status_code, two.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in one
    assert two["Idempotent-Replayed"] == "true"
    assert two.json() == one.json()
    assert MemberEvent.objects.count() == 1
    assert metric_totals(ann)["quantity:nights"] == 30
    assert MemberTierChange.objects.filter(member=ann, to_tier__code="gold").count() == 1


def test_same_instant_in_another_offset_is_the_same_event(api, ann):
    when = timezone.now().replace(microsecond=0) - timedelta(hours=3)
    first = api.post(URL, stay(when=when), format="json")
    bangkok = when.astimezone(timezone.get_fixed_timezone(7 * 60)).isoformat()
    again = api.post(URL, {**stay(when=when), "occurred_at": bangkok, "amount": "250.0"}, format="json")
    assert (first.status_code, again.status_code, again["Idempotent-Replayed"]) == (201, 201, "true")


def test_reusing_a_key_for_another_event_is_409(api, ann):
    api.post(URL, stay(), format="json")
    assert_problem(api.post(URL, stay(nights=1), format="json"), 409, "idempotency_conflict")
    assert MemberEvent.objects.count() == 1
    assert metric_totals(ann)["quantity:nights"] == 30


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"event_id": None}, "event_id"),
        ({"source": "has space"}, "source"),
        ({"type": "purchase"}, "type"),
        ({"occurred_at": "2026-03-01T10:00:00"}, "occurred_at"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"amount": "-1.00"}, "amount"),
        ({"amount": "1.001"}, "amount"),
        ({"amount": "2000000.00"}, "amount"),
        ({"currency": "EUR"}, "currency"),
        ({"currency": "usd"}, "currency"),
        ({"quantities": {"nights": -1}}, "quantities"),
        ({"quantities": {"Nights!": 1}}, "quantities"),
        ({"quantities": ["nights"]}, "quantities"),
        ({"attributes": "x"}, "attributes"),
        ({"qualifying": "perhaps"}, "qualifying"),
        ({"refund_of": "pos-0"}, "refund_of"),
        ({"type": "refund"}, "refund_of"),
        ({"type": "refund", "refund_of": "nope", "amount": "1.00"}, "refund_of"),
    ],
    ids=lambda v: str(v)[:30],
)
def test_invalid_event_is_422_and_stores_nothing(api, ann, change, field):
    body = {k: v for k, v in {**stay(), **change}.items() if v is not None}
    errors = assert_problem(api.post(URL, body, format="json"), 422, "validation_error")["errors"]
    assert any(name == field or name.startswith(f"{field}.") for name in errors), errors
    assert MemberEvent.objects.count() == 0
    assert MetricDay.objects.count() == 0


def test_event_in_the_future_is_422(api, ann):
    soon = stay(when=timezone.now() + timedelta(minutes=4))
    later = stay("pos-2", when=timezone.now() + timedelta(minutes=6))
    assert api.post(URL, soon, format="json").status_code == 201
    assert list(assert_problem(api.post(URL, later, format="json"), 422, "validation_error")["errors"]) == [
        "occurred_at"
    ]


def test_too_old_event_is_stored_as_rejected(api, ann, tenant):
    tenant.max_event_age_days = 30
    tenant.save()
    response = api.post(URL, stay(when=timezone.now() - timedelta(days=31)), format="json")
    assert response.status_code == 201
    assert response.json()["status"] == "rejected"
    event = MemberEvent.objects.get()
    assert (event.status, event.counted) == ("rejected", False)
    assert MetricDay.objects.count() == 0
    assert tier_of(ann) == "member"


def test_unknown_member_is_404_and_stores_nothing(api, ladder):
    assert_problem(api.post("/api/v1/member/ghost/event", stay(), format="json"), 404, "member_not_found")
    assert (Member.objects.count(), MemberEvent.objects.count()) == (0, 0)


def test_auto_enroll_registers_an_unknown_member(api, ladder, tenant):
    tenant.auto_enroll = True
    tenant.save()
    response = api.post("/api/v1/member/newbie/event", stay(), format="json")
    assert response.status_code == 201
    newbie = Member.objects.get(external_id="newbie")
    assert tier_of(newbie) == "gold"
    assert OutboxMessage.objects.filter(type="member.created", member_id="newbie").count() == 1


def test_suspended_member_events_are_stored_but_earn_nothing(api, ann):
    Member.objects.filter(pk=ann.pk).update(status="suspended")
    body = api.post(URL, stay(), format="json").json()
    assert body["status"] == "processed"
    assert body["tier_changes"] == []
    assert "suspended" in body["note"]
    assert MemberEvent.objects.get().counted is False
    assert MetricDay.objects.count() == 0
    assert tier_of(ann) == "member"


def test_non_qualifying_event_counts_only_as_an_event(api, ann):
    api.post(URL, stay(qualifying=False), format="json")
    assert metric_totals(ann) == {"events:transaction": 1}
    assert tier_of(ann) == "member"


def test_partial_refunds_reduce_metrics_pro_rata_and_never_beyond_the_original(api, ann):
    when = timezone.now() - timedelta(days=2)
    api.post(URL, stay("buy", nights=30, when=when) | {"amount": "300.00"}, format="json")
    refund = {"source": "pos", "type": "refund", "occurred_at": timezone.now().isoformat(), "refund_of": "buy"}
    r1 = api.post(URL, {**refund, "event_id": "ref-1", "amount": "100.00"}, format="json")
    assert r1.status_code == 201
    assert metric_totals(ann) == {
        "spend": Decimal("200"),
        "transactions": 1,
        "quantity:nights": 20,
        "quantity:stays": Decimal("0.6667"),
        "events:transaction": 1,
        "events:refund": 1,
    }
    assert tier_of(ann) == "member"  # 20 nights < 25: the gold claim never stood (no grace for it)
    over = assert_problem(
        api.post(URL, {**refund, "event_id": "ref-2", "amount": "200.01"}, format="json"), 422, "validation_error"
    )
    assert list(over["errors"]) == ["amount"]
    assert api.post(URL, {**refund, "event_id": "ref-3", "amount": "200.00"}, format="json").status_code == 201
    # Cumulative rounding: 0.3333 + 0.6667 of one stay, the purchase is reversed exactly.
    assert metric_totals(ann) == {"events:transaction": 1, "events:refund": 2}
    assert MemberEvent.objects.get(event_id="buy").refunded_amount == Decimal("300.00")
    assert tier_of(ann) == "member"


def test_late_event_lands_in_last_year(api, ann, tenant):
    last_year = timezone.now().replace(month=1, day=1, hour=12) - timedelta(days=2)
    body = api.post(URL, stay(when=last_year), format="json").json()
    assert body["tier_changes"][0]["to"] == "gold"
    assignment = MemberTierAssignment.objects.get(member=ann)
    # Qualified in last year's period: the claim runs to the end of this year (end_of_next_period).
    assert assignment.valid_until.astimezone(timezone.get_fixed_timezone(7 * 60)).year == timezone.now().year + 1


def test_rebuild_equals_incremental(api, ann):
    now = timezone.now()
    for i, (nights, days_ago) in enumerate([(3, 40), (5, 10), (7, 1)]):
        api.post(URL, stay(f"e{i}", nights=nights, when=now - timedelta(days=days_ago)), format="json")
    api.post(URL, {**stay("m1"), "type": "mission", "amount": None, "quantities": {}}, format="json")
    api.post(
        URL,
        {
            "event_id": "r1",
            "source": "pos",
            "type": "refund",
            "occurred_at": now.isoformat(),
            "refund_of": "e1",
            "amount": "250.00",
        },
        format="json",
    )

    def rows():  # a refund can bring a row to zero; a rebuild does not write zero rows
        return sorted(MetricDay.objects.filter(member=ann).exclude(value=0).values_list("day", "metric", "value"))

    incremental = rows()
    assert incremental
    rebuild_metrics(tenant=ann.tenant, member=ann)
    assert rows() == incremental
    assert daily_metrics(member=ann).total("quantity:nights", None, now.date() + timedelta(days=1)) == Decimal(10)


def test_tenants_are_isolated(api, api_client_for, other_tenant, ann):
    MemberFactory(tenant=other_tenant, external_id="ann")
    mine = api.post(URL, stay(), format="json").json()
    other = api_client_for(other_tenant)
    assert_problem(other.get(f"/api/v1/event/{mine['id']}"), 404, "not_found")
    # The same source and event_id in another tenant is another event.
    hotel_ladder(other_tenant)
    assert other.post(URL, stay(), format="json").status_code == 201
    assert MemberEvent.objects.count() == 2


def test_scopes_and_auth(api_client_for, tenant, ann, client):
    reader = api_client_for(tenant, "privilege:read")
    assert_problem(reader.post(URL, stay(), format="json"), 403, "insufficient_scope")
    assert_problem(client.post(URL, stay(), content_type="application/json"), 401, "not_authenticated")
    assert MemberEvent.objects.count() == 0


def test_get_event_returns_the_stored_result(api, ann):
    posted = api.post(URL, stay(), format="json").json()
    body = api.get(f"/api/v1/event/{posted['id']}").json()
    assert (body["status"], body["member_id"], body["type"], body["amount"]) == (
        "processed",
        "ann",
        "transaction",
        "250.00",
    )
    assert body["result"] == posted


def test_a_partner_tier_type_counts_only_that_partners_activity(api, ann, tenant):
    """DOMAIN §1: ``partner`` (and ``product``) restrict where a config row applies."""
    from tests.factories import PromotionRuleFactory, TierFactory, TierTypeFactory

    card = TierTypeFactory(tenant=tenant, code="card", partner="bank-co")
    classic = TierFactory(tier_type=card, code="classic", rank=1, is_default=True)
    premier = TierFactory(tier_type=card, code="premier", rank=2)
    PromotionRuleFactory(
        tier_type=card,
        target_tier=premier,
        code="premier-by-spend",
        criteria=[{"metric": "spend", "operator": "gte", "value": 500, "window_days": None}],
    )
    tenant.bump_config_version()  # factories bypass the services, which bump it
    api.post("/api/v1/member/ann/tier")  # enrol in the new tier type
    assert MemberTierAssignment.objects.get(member=ann, tier_type=card).tier == classic
    api.post(URL, stay("hotel-1") | {"amount": "900.00"}, format="json")
    assert MemberTierAssignment.objects.get(member=ann, tier_type=card).tier == classic  # not the partner's
    api.post(URL, stay("card-1") | {"amount": "499.00", "partner": "bank-co"}, format="json")
    assert MemberTierAssignment.objects.get(member=ann, tier_type=card).tier == classic
    body = api.post(URL, stay("card-2") | {"amount": "1.00", "partner": "bank-co"}, format="json").json()
    assert [(c["tier_type"], c["to"]) for c in body["tier_changes"]] == [("card", "premier")]
    totals = metric_totals(ann)
    assert (totals["spend"], totals["spend@partner:bank-co"]) == (Decimal("1400"), Decimal("500"))
