"""Member events: ingestion (synchronous or async), batch ingestion, and reading a stored result."""

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import TenantQuerysetMixin, flatten_errors, require_well_formed_body, tenant_of
from events.api.serializers import (
    BatchEventInputSerializer,
    EventAcceptedSerializer,
    EventBatchInputSerializer,
    EventBatchOutputSerializer,
    EventInputSerializer,
    EventOutputSerializer,
    EventResultSerializer,
    TierEvaluationSerializer,
)
from events.models import MemberEvent
from events.selectors import member_events
from events.services import REVIEW_KINDS, evaluate_member_now, ingest_batch, ingest_event
from members.api.serializers import MemberTierOutputSerializer
from members.selectors import get_member, member_tiers

MEMBER_ID = OpenApiParameter("member_id", str, OpenApiParameter.PATH, description="The member's external id.")
PREFER = OpenApiParameter(
    "Prefer", str, OpenApiParameter.HEADER, required=False, description="'respond-async' → 202 and a background task."
)


def _accepted_body(event: MemberEvent) -> dict[str, Any]:
    return {"id": event.pk, "status": MemberEvent.Status.RECEIVED, "url": f"/api/v1/event/{event.pk}"}


def event_response(event: MemberEvent, *, replayed: bool) -> Response:
    """201 with the result, or 202 with where to find it; a replay answers as the original did."""
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    if event.response_status == status.HTTP_202_ACCEPTED:
        return Response(_accepted_body(event), status=status.HTTP_202_ACCEPTED, headers=headers)
    return Response(event.result_body(), status=event.response_status, headers=headers)


@extend_schema(tags=["events"], parameters=[MEMBER_ID, PREFER])
class MemberEventView(APIView):
    """Report a member event (DOMAIN §7), idempotent on (source, event_id)."""

    @extend_schema(
        request=EventInputSerializer,
        responses={
            201: EventResultSerializer,
            202: EventAcceptedSerializer,
            200: OpenApiResponse(description="A replay: the original status and body, with Idempotent-Replayed."),
        },
    )
    def post(self, request: Request, member_id: str) -> Response:
        data = EventInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        asynchronous = "respond-async" in request.headers.get("Prefer", "")
        event, replayed = ingest_event(
            tenant=tenant_of(request),
            member_id=member_id,
            data=data.validated_data,
            actor=request.user,
            asynchronous=asynchronous,
        )
        return event_response(event, replayed=replayed)


@extend_schema(tags=["events"])
class EventBatchView(APIView):
    """Up to 1,000 events of any members, each evaluated in the background (202). Every event gets an
    outcome: accepted, replayed, or rejected with the problem's code and field errors; one bad event
    does not stop the others."""

    @extend_schema(request=EventBatchInputSerializer, responses={202: EventBatchOutputSerializer})
    def post(self, request: Request) -> Response:
        batch = EventBatchInputSerializer(data=request.data)
        batch.is_valid(raise_exception=True)
        tenant = tenant_of(request)
        results: list[dict[str, Any]] = [{} for _ in batch.validated_data["events"]]
        valid: list[tuple[int, str, dict[str, Any]]] = []
        for index, raw in enumerate(batch.validated_data["events"]):
            item = BatchEventInputSerializer(data=raw)
            results[index] = {"index": index, "event_id": raw.get("event_id"), "source": raw.get("source")}
            if item.is_valid():
                values = dict(item.validated_data)
                valid.append((index, values.pop("member_id"), values))
            else:
                results[index].update(outcome="rejected", code="validation_error", errors=flatten_errors(item.errors))
        for (index, _, _), outcome in zip(
            valid, ingest_batch(tenant=tenant, items=valid, actor=request.user), strict=True
        ):
            results[index].update(outcome)
        counts = {k: sum(1 for r in results if r["outcome"] == k) for k in ("accepted", "replayed", "rejected")}
        return Response({**counts, "results": results}, status=status.HTTP_202_ACCEPTED)


@extend_schema(tags=["events"])
class EventDetailView(TenantQuerysetMixin, generics.RetrieveAPIView):
    """A stored event, its processing status and its result."""

    serializer_class = EventOutputSerializer
    queryset = MemberEvent.objects.none()

    def tenant_queryset(self, tenant):
        return member_events(tenant=tenant)


DRY_RUN = OpenApiParameter(
    "dry_run",
    bool,
    OpenApiParameter.QUERY,
    required=False,
    description="true: report what would change, change nothing.",
)


@extend_schema(tags=["events"], parameters=[MEMBER_ID, DRY_RUN])
class MemberTierEvaluateView(APIView):
    """Evaluate the member's tiers now and apply one kind of movement (seed 14.7):
    ``/tier/promotion`` applies promotions, ``/tier/demotion`` demotions and expiries."""

    kinds: frozenset[str] = frozenset()

    @extend_schema(request=None, responses=TierEvaluationSerializer)
    def post(self, request: Request, member_id: str) -> Response:
        require_well_formed_body(request)
        dry_run = request.query_params.get("dry_run", "false").lower() in ("1", "true", "yes")
        tenant = tenant_of(request)
        member = get_member(tenant=tenant, external_id=member_id)
        changes = evaluate_member_now(
            tenant=tenant, member=member, actor=request.user, kinds=self.kinds, dry_run=dry_run
        )
        return Response(
            {
                "dry_run": dry_run,
                "tier_changes": changes,
                "tiers": MemberTierOutputSerializer(member_tiers(member=member), many=True).data,
            }
        )


class MemberTierPromotionView(MemberTierEvaluateView):
    kinds = frozenset({"promotion"})


class MemberTierDemotionView(MemberTierEvaluateView):
    kinds = REVIEW_KINDS
