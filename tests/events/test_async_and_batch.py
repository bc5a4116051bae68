"""The asynchronous path: ``Prefer: respond-async``, the evaluation task with retries and dead
letters, the sweeper, and ``POST /events/batch``."""

from datetime import timedelta

import pytest
from django.utils import timezone

from events import evaluation, ingestion
from events.ingestion import replay_event
from events.tasks import evaluate_member_events, sweep_received
from members.models import MemberEvent, MetricDay
from tests.events.test_ingestion import stay
from tests.helpers import assert_problem
from tiers.models import MemberTierAssignment

pytestmark = pytest.mark.django_db

URL = "/api/v1/member/ann/event"


def test_respond_async_accepts_then_a_task_evaluates(api, ann, eager_tasks, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = api.post(URL, stay(), format="json", HTTP_PREFER="respond-async")
    assert response.status_code == 202
    event = MemberEvent.objects.get()
    assert response.json() == {"id": event.pk, "status": "received", "url": f"/api/v1/event/{event.pk}"}
    assert len(callbacks) == 1
    event.refresh_from_db()
    assert (event.status, event.counted) == ("processed", True)
    assert MemberTierAssignment.objects.get(member=ann).tier.code == "gold"
    # A replay answers as the original did: 202 and the same body.
    again = api.post(
        URL, stay() | {"occurred_at": event.occurred_at.isoformat()}, format="json", HTTP_PREFER="respond-async"
    )
    assert (again.status_code, again.json(), again["Idempotent-Replayed"]) == (202, response.json(), "true")
    detail = api.get(f"/api/v1/event/{event.pk}").json()
    assert detail["status"] == "processed"
    assert detail["result"]["tier_changes"][0]["to"] == "gold"


def test_async_replay_is_the_original_202(api, ann, django_capture_on_commit_callbacks):
    body = stay()
    with django_capture_on_commit_callbacks(execute=False):
        first = api.post(URL, body, format="json", HTTP_PREFER="respond-async")
        again = api.post(URL, body, format="json", HTTP_PREFER="respond-async")
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"


def test_task_is_idempotent(ann):
    ingestion.ingest_event(tenant=ann.tenant, member_id="ann", data=_validated(stay()), actor="t", asynchronous=True)
    assert evaluate_member_events.apply(args=(ann.pk,)).get() == 1
    assert evaluate_member_events.apply(args=(ann.pk,)).get() == 0  # nothing pending: no second effect
    assert sum(MetricDay.objects.filter(member=ann, metric="quantity:nights").values_list("value", flat=True)) == (
        30 * MetricDay.SCALE
    )


def test_failures_are_retried_then_dead_and_replayable(ann, monkeypatch, django_capture_on_commit_callbacks):
    event, _ = ingestion.ingest_event(
        tenant=ann.tenant, member_id="ann", data=_validated(stay()), actor="t", asynchronous=True
    )
    calls = {"n": 0}

    def broken(**kwargs):
        calls["n"] += 1
        raise ConnectionError("database went away")

    monkeypatch.setattr("events.tasks.process_member_events", broken)
    monkeypatch.setattr(evaluate_member_events.app.conf, "CELERY_TASK_EAGER_PROPAGATES", False)  # eager retries
    evaluate_member_events.apply(args=(ann.pk,))  # eager: each retry runs at once
    event.refresh_from_db()
    assert (event.status, event.attempts, calls["n"]) == (
        "dead",
        evaluation.MAX_ATTEMPTS,
        evaluation.MAX_ATTEMPTS,
    )
    assert event.last_error == "ConnectionError: database went away"
    assert MetricDay.objects.count() == 0
    monkeypatch.undo()
    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        replay_event(tenant=ann.tenant, event=event, actor="user:ops")
    assert len(enqueued) == 1
    assert MemberEvent.objects.get(pk=event.pk).status == "received"
    evaluate_member_events.apply(args=(ann.pk,))
    event.refresh_from_db()
    assert (event.status, event.counted) == ("processed", True)


def test_sweeper_reenqueues_events_left_received(ann, eager_tasks):
    event, _ = ingestion.ingest_event(
        tenant=ann.tenant, member_id="ann", data=_validated(stay()), actor="t", asynchronous=True
    )
    assert sweep_received(older_than_seconds=60) == 0  # too recent: its task may still be on the way
    MemberEvent.objects.filter(pk=event.pk).update(received_at=timezone.now() - timedelta(minutes=5))
    assert sweep_received(older_than_seconds=60) == 1
    event.refresh_from_db()
    assert event.status == "processed"
    assert sweep_received(older_than_seconds=60) == 0


def _validated(body: dict) -> dict:
    from members.api.serializers import EventInputSerializer

    serializer = EventInputSerializer(data=body)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


# --- batch ----------------------------------------------------------------------------------------
def test_batch_reports_every_event_and_evaluates_the_accepted(
    api, ann, tenant, eager_tasks, django_capture_on_commit_callbacks
):
    api.post(URL, stay("dup"), format="json")
    events = [
        {**stay("b1", nights=5), "member_id": "ann"},
        {**stay("b2", nights=5), "member_id": "ann"},
        {**stay("dup"), "member_id": "ann"},
        {**stay("b3"), "member_id": "ghost"},
        {**stay("b4"), "member_id": "ann", "amount": "-5"},
        {**stay("b5"), "member_id": "ann", "currency": "EUR"},
        {"junk": True},
    ]
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/v1/events/batch", {"events": events}, format="json")
    assert response.status_code == 202
    body = response.json()
    assert (body["accepted"], body["replayed"], body["rejected"]) == (2, 0, 5)
    outcomes = [(r["index"], r["outcome"], r.get("code")) for r in body["results"]]
    assert outcomes == [
        (0, "accepted", None),
        (1, "accepted", None),
        (2, "rejected", "idempotency_conflict"),  # a sync event with the same key but other occurred_at
        (3, "rejected", "member_not_found"),
        (4, "rejected", "validation_error"),
        (5, "rejected", "validation_error"),
        (6, "rejected", "validation_error"),
    ]
    assert body["results"][4]["errors"] == {"amount": ["Ensure this value is greater than or equal to 0."]}
    assert list(body["results"][5]["errors"]) == ["currency"]
    assert set(MemberEvent.objects.filter(event_id__in=["b1", "b2"]).values_list("status", flat=True)) == {"processed"}


def test_batch_limits(api, ann):
    assert_problem(api.post("/api/v1/events/batch", {"events": []}, format="json"), 422, "validation_error")
    too_many = {"events": [{"x": 1}] * 1001}
    assert_problem(api.post("/api/v1/events/batch", too_many, format="json"), 422, "validation_error")
    assert_problem(api.post("/api/v1/events/batch", {"events": "x"}, format="json"), 422, "validation_error")


def test_batch_needs_write_scope(api_client_for, tenant, ann):
    reader = api_client_for(tenant, "privilege:read")
    body = {"events": [{**stay("b1"), "member_id": "ann"}]}
    assert_problem(reader.post("/api/v1/events/batch", body, format="json"), 403, "insufficient_scope")
    assert MemberEvent.objects.count() == 0


def test_batch_of_one_member_is_one_run(api, ann, eager_tasks, django_capture_on_commit_callbacks):
    """A member's pending events are evaluated together: metrics from all of them, tiers once; the
    run's tier change is reported on its last event. In-batch duplicates are replays; refunds work."""
    events = [{**stay(f"s{i}", nights=10), "member_id": "ann"} for i in range(3)]
    events.append({**stay("s0", nights=10), "member_id": "ann"} | {"occurred_at": events[0]["occurred_at"]})
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        body = api.post("/api/v1/events/batch", {"events": events}, format="json").json()
    assert [r["outcome"] for r in body["results"]] == ["accepted", "accepted", "accepted", "replayed"]
    assert body["results"][3]["id"] == body["results"][0]["id"]
    assert len(callbacks) == 1  # one task for the member
    stored = list(MemberEvent.objects.filter(member=ann).order_by("id"))
    assert [e.status for e in stored] == ["processed"] * 3
    assert [len(e.result["tier_changes"]) for e in stored] == [0, 0, 1]
    assert stored[2].result["tier_changes"][0]["to"] == "gold"
    assert MemberTierAssignment.objects.get(member=ann).tier.code == "gold"
    refund = {
        "event_id": "r1",
        "source": "pos",
        "type": "refund",
        "occurred_at": timezone.now().isoformat(),
        "refund_of": "s1",
        "amount": "250.00",
        "member_id": "ann",
    }
    with django_capture_on_commit_callbacks(execute=True):
        body = api.post("/api/v1/events/batch", {"events": [refund]}, format="json").json()
    assert body["accepted"] == 1
    assert MemberTierAssignment.objects.get(member=ann).tier.code == "member"  # 20 nights left < 25
