"""The service adapters (integrations/adapters.py) driven through the outbox relay against real HTTP
peers (pytest-httpserver): IAM link and privilege pushes, the Point Service's per-transaction sync, and
the embedded default with nothing configured."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEntry
from events.registration import register_member
from members.models import Member
from members.services import Registration
from outbox import relay
from outbox import services as outbox_services
from outbox.emit import emit
from outbox.models import Delivery, OutboxMessage
from outbox.registry import service_adapters
from points.models import PointConversionRule, PointPolicy, PointTransaction
from tests.events.peers import Peer, relay_once, relay_until_settled
from tests.factories import PromotionRuleFactory, hotel_ladder

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _integrations_off(settings):
    """Every test starts with nothing configured and short timeouts; each turns on what it tests."""
    settings.BROKER_PUBLISH = False
    settings.IAM_BASE_URL = settings.POINT_SERVICE_URL = settings.NOTIFICATION_BASE_URL = ""
    settings.IAM_TOKEN, settings.POINT_SERVICE_TOKEN = "iam-token", "points-token"
    settings.INTEGRATION_CONNECT_TIMEOUT = settings.INTEGRATION_READ_TIMEOUT = 0.5


@pytest.fixture
def iam(settings, httpserver):
    settings.IAM_BASE_URL = httpserver.url_for("/")
    return httpserver


@pytest.fixture
def point_service(settings, httpserver):
    settings.POINT_SERVICE_URL = httpserver.url_for("")
    return httpserver


def _emit(tenant, type_, member_id="ann", **data) -> OutboxMessage:
    with transaction.atomic():
        return emit(tenant=tenant, type=type_, member_id=member_id, data=data)


def _register(tenant, external_id="ann", **fields) -> Member:
    member, _ = register_member(
        tenant=tenant, registration=Registration(external_id=external_id, **fields), actor="test"
    )
    return member


def _earn_rules(tenant) -> None:
    """Two rules in different groups: a 100.00 purchase earns 1,000 + 100 points (two transactions)."""
    for code, per_unit in (("base", 10), ("bonus", 1)):
        PointConversionRule.objects.create(
            tenant=tenant,
            code=code,
            group=code,
            unit_amount=Decimal("1.00"),
            points_per_unit=per_unit,
            event_types=["transaction"],
        )
    tenant.bump_config_version()


def _buy(api, event_id="buy", amount="100.00"):
    body = {
        "event_id": event_id,
        "source": "pos",
        "type": "transaction",
        "occurred_at": (timezone.now() - timedelta(hours=1)).isoformat(),
        "amount": amount,
    }
    response = api.post("/api/v1/member/ann/event", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


# --- nothing configured (the embedded default) ----------------------------------------------------
def test_with_nothing_configured_no_delivery_is_made_and_points_are_skipped(tenant, httpserver):
    hotel_ladder(tenant)
    PointPolicy.objects.create(tenant=tenant, welcome_points=500)
    member = _register(tenant)
    assert service_adapters() == []
    relay_until_settled()
    assert not Delivery.objects.exists()
    assert set(OutboxMessage.objects.values_list("type", "status")) == {
        ("member.created", "delivered"),
        ("tier.changed", "delivered"),
        ("points.applied", "delivered"),
    }
    assert list(PointTransaction.objects.values_list("kind", "sync_status")) == [("welcome", "skipped")]
    member.refresh_from_db()
    assert (member.iam_linked, member.attributes) == (False, {})
    assert httpserver.log == []


def test_new_point_transactions_wait_for_the_point_service_only_when_it_is_configured(tenant, settings):
    PointPolicy.objects.create(tenant=tenant, welcome_points=500)
    _register(tenant, "skipped-one")
    settings.POINT_SERVICE_URL = "http://points.invalid"
    _register(tenant, "pending-one")
    assert dict(PointTransaction.objects.values_list("member__external_id", "sync_status")) == {
        "skipped-one": "skipped",
        "pending-one": "pending",
    }


def test_only_configured_adapters_are_enabled(settings):
    settings.POINT_SERVICE_URL = "http://points.invalid"
    assert [a.destination for a in service_adapters()] == ["point_service"]
    settings.IAM_BASE_URL = settings.NOTIFICATION_BASE_URL = "http://x.invalid"
    assert [a.destination for a in service_adapters()] == ["iam", "point_service", "notification"]


# --- IAM ------------------------------------------------------------------------------------------
def test_member_created_links_at_the_iam_and_stores_the_attributes_it_returns(api, tenant, iam):
    hotel_ladder(tenant)
    link = Peer(reply={"attributes": {"segment": "vip", "country": "SG"}})
    privileges = Peer()
    iam.expect_request("/members/ann/link", method="POST").respond_with_handler(link)
    iam.expect_request("/members/ann/privileges", method="POST").respond_with_handler(privileges)

    api.post("/api/v1/member", {"external_id": "ann", "attributes": {"country": "TH"}}, format="json")
    relay_until_settled()

    created = OutboxMessage.objects.get(type="member.created")
    (request,) = link.requests
    assert (request["key"], request["auth"], request["content_type"]) == (
        str(created.pk),
        "Bearer iam-token",
        "application/json",
    )
    body = request["body"]
    assert (body["tenant"], body["member_id"], body["message_id"]) == ("acme", "ann", str(created.pk))
    assert body["member"]["status"] == "active"
    assert [(t["tier_type"], t["tier"]) for t in body["member"]["tiers"]] == [("hotel", "member")]
    assert not {"name", "email", "mobile"} & set(body["member"])  # identity stays with the IAM

    member = Member.objects.get(external_id="ann")
    assert (member.iam_linked, member.attributes) == (True, {"country": "SG", "segment": "vip"})
    (audit,) = AuditEntry.objects.filter(action="member.iam_linked")
    assert (audit.actor, audit.member_id) == ("system:iam", "ann")
    assert audit.after == {"iam_linked": True, "changed_attributes": ["country", "segment"]}

    # The default tier assignment is pushed as a privilege change: the envelope, keyed by message id.
    tier_changed = OutboxMessage.objects.get(type="tier.changed")
    assert [(r["key"], r["body"]) for r in privileges.requests] == [(str(tier_changed.pk), tier_changed.envelope())]
    assert set(Delivery.objects.values_list("destination", "status")) == {("iam", "delivered")}
    iam.check_assertions()


def test_attributes_from_the_iam_feed_tier_criteria(api, tenant, iam):
    _, tiers, _ = hotel_ladder(tenant)
    PromotionRuleFactory(
        tier_type=tiers["silver"].tier_type,
        target_tier=tiers["silver"],
        code="silver-by-segment",
        criteria=[{"metric": "attribute:segment", "operator": "eq", "value": "vip", "window_days": None}],
    )
    tenant.bump_config_version()
    privileges = Peer()
    iam.expect_request("/members/ann/link", method="POST").respond_with_handler(
        Peer(reply={"attributes": {"segment": "vip"}})
    )
    iam.expect_request("/members/ann/privileges", method="POST").respond_with_handler(privileges)
    api.post("/api/v1/member", {"external_id": "ann"}, format="json")
    before = api.post("/api/v1/member/ann/tier/promotion?dry_run=true").json()
    assert before["tier_changes"] == []  # not linked yet: no attribute

    relay_until_settled()
    promoted = api.post("/api/v1/member/ann/tier/promotion").json()
    assert [(c["from"], c["to"]) for c in promoted["tier_changes"]] == [("member", "silver")]
    relay_until_settled()
    assert [r["body"]["data"]["to"] for r in privileges.requests] == ["member", "silver"]


def test_the_link_is_retried_with_the_same_key_and_applied_once(tenant, iam):
    link = Peer(script=[503, "sleep"], reply={"attributes": {"segment": "vip"}})
    iam.expect_request("/members/ann/link", method="POST").respond_with_handler(link)
    _register(tenant)
    relay_until_settled()
    created = OutboxMessage.objects.get(type="member.created")
    assert link.keys == [str(created.pk)] * 3  # 503, a timeout, then the answer
    assert link.effects == [str(created.pk)]
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("delivered", 3)
    assert AuditEntry.objects.filter(action="member.iam_linked").count() == 1
    assert Member.objects.get().attributes == {"segment": "vip"}


@pytest.mark.parametrize(
    ("status", "reply", "error"),
    [
        (404, {}, "HTTP 404"),
        (200, {"attributes": ["not", "an", "object"]}, "without an attributes object"),
    ],
    ids=["refused", "malformed-answer"],
)
def test_a_refused_or_malformed_link_is_dead_and_the_member_unlinked(tenant, iam, status, reply, error):
    iam.expect_request("/members/ann/link", method="POST").respond_with_handler(Peer(script=[status], reply=reply))
    _register(tenant, attributes={"country": "TH"})
    relay_until_settled()
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("dead", 1)
    assert error in delivery.last_error
    member = Member.objects.get()
    assert (member.iam_linked, member.attributes) == (False, {"country": "TH"})
    assert not AuditEntry.objects.filter(action="member.iam_linked").exists()


def test_tier_and_benefit_changes_are_pushed_and_nothing_else(tenant, iam):
    privileges = Peer(script=[500])
    iam.expect_request("/members/ann/privileges", method="POST").respond_with_handler(privileges)
    pushed = [
        _emit(tenant, "tier.changed", tier_type="hotel", to="gold"),
        _emit(tenant, "benefit.applied", benefit="late-checkout"),
        _emit(tenant, "benefit.revoked", benefit="late-checkout"),
        _emit(tenant, "benefit.expired", benefit="lounge"),
    ]
    _emit(tenant, "points.applied", total=10, transactions=[])
    _emit(tenant, "event_code.redeemed", code="VIP")
    _emit(tenant, "tier.changed", member_id="", note="a tenant-level message names no member")
    relay_until_settled()
    assert sorted(set(privileges.keys)) == sorted(str(m.pk) for m in pushed)
    assert privileges.keys.count(str(pushed[0].pk)) == 2  # the 500 was retried with the same key
    assert sorted(privileges.effects) == sorted(str(m.pk) for m in pushed)
    assert {r["body"]["type"] for r in privileges.requests} == {m.type for m in pushed}
    assert all(r["auth"] == "Bearer iam-token" for r in privileges.requests)
    assert Delivery.objects.filter(destination="iam").count() == 4
    assert not Delivery.objects.exclude(status="delivered").exists()
    iam.check_assertions()


# --- Point Service --------------------------------------------------------------------------------
def test_each_transaction_is_posted_once_per_key_even_when_the_first_answer_is_a_timeout(api, tenant, point_service):
    _earn_rules(tenant)
    api.post("/api/v1/member", {"external_id": "ann"}, format="json")
    peer = Peer(script=["sleep"])
    point_service.expect_request("/transactions", method="POST").respond_with_handler(peer)
    result = _buy(api)
    first, second = sorted(t["id"] for t in result["points"]["transactions"])
    assert set(PointTransaction.objects.values_list("sync_status", flat=True)) == {"pending"}

    relay_once()
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("pending", 1, "timeout: ReadTimeout")
    assert set(PointTransaction.objects.values_list("sync_status", flat=True)) == {"pending"}
    relay_until_settled()

    assert peer.keys == [str(first), str(first), str(second)]  # the retry carried the same key
    assert peer.effects == [str(first), str(second)]  # exactly one effect per transaction
    message = OutboxMessage.objects.get(type="points.applied")
    bodies = {r["body"]["transaction_id"]: r["body"] for r in peer.requests}
    for tx in PointTransaction.objects.select_related("event"):
        assert tx.sync_status == "sent"
        assert bodies[tx.pk] == {
            "transaction_id": tx.pk,
            "tenant": "acme",
            "member_id": "ann",
            "points": tx.points,
            "kind": "earn",
            "occurred_at": DjangoJSONEncoder().default(tx.occurred_at),
            "event_id": "buy",
            "event_source": "pos",
            "reversal_of": None,
            "message_id": str(message.pk),
            "message_type": "points.applied",
        }
    assert sorted(b["points"] for b in bodies.values()) == [100, 1000]
    assert all(r["auth"] == "Bearer points-token" for r in peer.requests)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("delivered", 2, "")


def test_a_5xx_is_retried_and_acknowledged_transactions_are_not_sent_again(api, tenant, point_service):
    _earn_rules(tenant)
    api.post("/api/v1/member", {"external_id": "ann"}, format="json")
    peer = Peer(script=[200, 500, 502])
    point_service.expect_request("/transactions", method="POST").respond_with_handler(peer)
    first, second = sorted(t["id"] for t in _buy(api)["points"]["transactions"])

    relay_once()
    assert dict(PointTransaction.objects.values_list("pk", "sync_status")) == {first: "sent", second: "pending"}
    relay_until_settled()
    assert peer.keys == [str(first), str(second), str(second), str(second)]
    assert peer.effects == [str(first), str(second)]
    assert set(PointTransaction.objects.values_list("sync_status", flat=True)) == {"sent"}
    assert Delivery.objects.get().attempts == 3


def test_a_4xx_is_dead_the_transactions_failed_and_the_points_kept_then_a_replay_sends_them(api, tenant, point_service):
    _earn_rules(tenant)
    api.post("/api/v1/member", {"external_id": "ann"}, format="json")
    peer = Peer(script=[200, 422])
    point_service.expect_request("/transactions", method="POST").respond_with_handler(peer)
    first, second = sorted(t["id"] for t in _buy(api)["points"]["transactions"])
    relay_until_settled()

    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("dead", 1, 422)
    assert OutboxMessage.objects.get(type="points.applied").status == "dead"
    assert dict(PointTransaction.objects.values_list("pk", "sync_status")) == {first: "sent", second: "failed"}
    # A sync failure never rolls back member state: the points stay awarded.
    assert api.get("/api/v1/member/ann/points").json()["total"] == 1100

    outbox_services.replay_message(tenant=tenant, message=delivery.message, actor="test")
    assert dict(PointTransaction.objects.values_list("pk", "sync_status")) == {first: "sent", second: "pending"}
    relay_until_settled()
    assert peer.keys == [str(first), str(second), str(second)]
    assert set(PointTransaction.objects.values_list("sync_status", flat=True)) == {"sent"}


def test_retries_exhausted_fail_the_transactions(tenant, settings, point_service):
    settings.OUTBOX_MAX_ATTEMPTS = 3
    PointPolicy.objects.create(tenant=tenant, welcome_points=500)
    peer = Peer(script=[500] * 10)
    point_service.expect_request("/transactions", method="POST").respond_with_handler(peer)
    _register(tenant)
    relay_until_settled()
    (tx,) = PointTransaction.objects.all()
    assert peer.keys == [str(tx.pk)] * 3
    assert peer.effects == []
    assert tx.sync_status == "failed"
    delivery = Delivery.objects.get()
    assert delivery.status == "dead"
    assert delivery.last_error.startswith("gave up after 3 attempts")


def test_a_service_unconfigured_after_fan_out_still_fails_the_transactions(tenant, settings, point_service):
    PointPolicy.objects.create(tenant=tenant, welcome_points=500)
    _register(tenant)
    relay.fan_out()
    settings.POINT_SERVICE_URL = ""
    relay_until_settled()
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.last_error) == ("dead", "point_service is not configured any more")
    assert PointTransaction.objects.get().sync_status == "failed"


def test_reversals_and_adjustments_are_synced_too(api, tenant, point_service):
    _earn_rules(tenant)
    api.post("/api/v1/member", {"external_id": "ann"}, format="json")
    peer = Peer()
    point_service.expect_request("/transactions", method="POST").respond_with_handler(peer)
    _buy(api)
    refund = {
        "event_id": "r1",
        "source": "pos",
        "type": "refund",
        "occurred_at": timezone.now().isoformat(),
        "refund_of": "buy",
        "amount": "50.00",
    }
    assert api.post("/api/v1/member/ann/event", refund, format="json").status_code == 201
    relay_until_settled()
    kinds = sorted((r["body"]["kind"], r["body"]["points"], r["body"]["message_type"]) for r in peer.requests)
    assert kinds == [
        ("earn", 100, "points.applied"),
        ("earn", 1000, "points.applied"),
        ("reversal", -500, "points.reverted"),
        ("reversal", -50, "points.reverted"),
    ]
    assert set(PointTransaction.objects.values_list("sync_status", flat=True)) == {"sent"}
    assert sorted(peer.effects) == sorted(str(pk) for pk in PointTransaction.objects.values_list("pk", flat=True))


def test_another_tenants_transaction_ids_in_a_message_are_ignored(tenant, other_tenant, point_service):
    PointPolicy.objects.create(tenant=other_tenant, welcome_points=500)
    theirs = _register(other_tenant, "theirs")
    (their_tx,) = PointTransaction.objects.filter(member=theirs)
    Delivery.objects.all().delete()
    OutboxMessage.objects.update(status="delivered")
    peer = Peer()
    point_service.expect_request("/transactions", method="POST").respond_with_handler(peer)
    _emit(tenant, "points.applied", total=500, transactions=[{"id": their_tx.pk}])
    relay_until_settled()
    assert peer.requests == []
    their_tx.refresh_from_db()
    assert their_tx.sync_status == "pending"


# --- failure bookkeeping --------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_relay_reports_each_failed_attempt_and_the_final_one(tenant, settings, monkeypatch):
    """The relay decides when a delivery is dead and tells the adapter (``on_failure``), even when
    ``send`` raised (retried like a 5xx)."""
    from outbox import registry, relay

    settings.OUTBOX_MAX_ATTEMPTS = 2
    calls = []

    def broken(delivery, now):
        raise RuntimeError("boom")

    adapter = registry.Adapter(
        "point_service", lambda m: True, broken, lambda d, outcome, final: calls.append((outcome.error, final))
    )
    monkeypatch.setattr(registry, "_registry", {"point_service": adapter})
    _emit(tenant, "points.applied", total=1, transactions=[])
    for _ in range(3):
        relay.fan_out()
        relay.deliver_due()
        Delivery.objects.update(next_attempt_at=timezone.now())
    assert calls == [("RuntimeError: boom", False), ("RuntimeError: boom", True)]
    assert Delivery.objects.get().status == "dead"
