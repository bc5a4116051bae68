"""Member events: ingestion (synchronous or async), batch ingestion, and reading a stored result.

And the outbox's operator side (DOMAIN §8): webhook subscriptions, the outbox with its deliveries and
replay, and publishing a message by hand (seed 14.9). All of those need ``privilege:admin`` except
reading subscriptions (``privilege:read``). Reading the outbox needs admin too, unlike other reads
(API.md: read covers every GET but audit): its messages carry every member's data, the same reason
audit reads have their own scope.
"""

from typing import Any

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import (
    IDEMPOTENCY_KEY,
    MEMBER_ID,
    SCOPE_ADMIN,
    TenantQuerysetMixin,
    boolean_query_param,
    flatten_errors,
    require_well_formed_body,
    tenant_of,
)
from events.api.serializers import (
    EventAcceptedSerializer,
    EventBatchInputSerializer,
    EventBatchOutputSerializer,
    EventOutputSerializer,
    EventResultSerializer,
    OutboxMessageOutputSerializer,
    PublishedSerializer,
    PublishInputSerializer,
    ReplayOutputSerializer,
    RotateSecretInputSerializer,
    TierEvaluationSerializer,
    WebhookSubscriptionInputSerializer,
    WebhookSubscriptionOutputSerializer,
    WebhookSubscriptionSecretOutputSerializer,
)
from events.evaluation import REVIEW_KINDS, evaluate_member_now
from events.ingestion import ingest_batch, ingest_event
from events.publish import publish_event
from events.selectors import member_events, tier_progress
from members.api.serializers import BatchEventInputSerializer, EventInputSerializer
from members.models import MemberEvent
from members.selectors import get_member, member_tiers
from outbox.models import MESSAGE_TYPES, OutboxMessage, WebhookSubscription
from outbox.selectors import outbox_messages, outbox_messages_with_deliveries, webhook_subscriptions
from outbox.services import (
    delete_subscription,
    replay_dead_deliveries,
    rotate_secret,
    save_subscription,
)
from tenancy.idempotency import idempotent
from tenancy.models import Tenant
from tiers.api.serializers import MemberTierOutputSerializer

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
    description="true (or 1): report what would change, change nothing; false (or 0, the default) applies it. "
    "Any other value is a 422.",
)


@extend_schema(tags=["events"], parameters=[MEMBER_ID, DRY_RUN])
class MemberTierEvaluateView(APIView):
    """Evaluate the member's tiers now and apply one kind of movement (seed 14.7):
    ``/tier/promotion`` applies promotions, ``/tier/demotion`` demotions and expiries."""

    kinds: frozenset[str] = frozenset()

    @extend_schema(request=None, responses=TierEvaluationSerializer)
    def post(self, request: Request, member_id: str) -> Response:
        require_well_formed_body(request)
        dry_run = boolean_query_param(request, "dry_run")
        tenant = tenant_of(request)
        member = get_member(tenant=tenant, external_id=member_id)
        changes = evaluate_member_now(
            tenant=tenant, member=member, actor=request.user, kinds=self.kinds, dry_run=dry_run
        )
        # The member's tiers as they now stand (unchanged by a dry run), with progress as GET .../tier.
        context = {"progress": tier_progress(tenant=tenant, member=member)}
        return Response(
            {
                "dry_run": dry_run,
                "tier_changes": changes,
                "tiers": MemberTierOutputSerializer(member_tiers(member=member), many=True, context=context).data,
            }
        )


class MemberTierPromotionView(MemberTierEvaluateView):
    kinds = frozenset({"promotion"})


class MemberTierDemotionView(MemberTierEvaluateView):
    kinds = REVIEW_KINDS


# --- webhook subscriptions ------------------------------------------------------------------------
DELETED = OpenApiResponse(response=None, description="Deleted.")


def _apply(instance: Any, values: dict[str, Any]) -> Any:
    for name, value in values.items():
        setattr(instance, name, value)
    return instance


@extend_schema(tags=["webhooks"])
class WebhookSubscriptionListCreateView(TenantQuerysetMixin, generics.ListAPIView):
    """List the tenant's webhook subscriptions, or create one (its signing secret is in this response
    only). The URL must be http(s) and resolve to public addresses only."""

    write_scope = SCOPE_ADMIN
    serializer_class = WebhookSubscriptionOutputSerializer
    queryset = WebhookSubscription.objects.none()

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[WebhookSubscription]:
        return webhook_subscriptions(tenant=tenant)

    @extend_schema(
        request=WebhookSubscriptionInputSerializer, responses={201: WebhookSubscriptionSecretOutputSerializer}
    )
    def post(self, request: Request) -> Response:
        data = WebhookSubscriptionInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        subscription = save_subscription(
            tenant=tenant_of(request), subscription=WebhookSubscription(**data.validated_data), actor=request.user
        )
        return Response(WebhookSubscriptionSecretOutputSerializer(subscription).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["webhooks"])
class WebhookSubscriptionDetailView(TenantQuerysetMixin, generics.RetrieveAPIView):
    """Read, replace, change or delete one subscription (never showing its secret). Setting
    ``active: true`` on one a 410 Gone disabled clears its ``disabled_reason``."""

    write_scope = SCOPE_ADMIN
    serializer_class = WebhookSubscriptionOutputSerializer
    queryset = WebhookSubscription.objects.none()

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[WebhookSubscription]:
        return webhook_subscriptions(tenant=tenant)

    @extend_schema(request=WebhookSubscriptionInputSerializer, responses={200: WebhookSubscriptionOutputSerializer})
    def put(self, request: Request, pk: int) -> Response:
        return self._update(request, partial=False)

    @extend_schema(request=WebhookSubscriptionInputSerializer, responses={200: WebhookSubscriptionOutputSerializer})
    def patch(self, request: Request, pk: int) -> Response:
        return self._update(request, partial=True)

    @extend_schema(responses={204: DELETED})
    def delete(self, request: Request, pk: int) -> Response:
        delete_subscription(tenant=tenant_of(request), subscription=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _update(self, request: Request, *, partial: bool) -> Response:
        subscription = self.get_object()
        data = WebhookSubscriptionInputSerializer(subscription, data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        subscription = save_subscription(
            tenant=tenant_of(request), subscription=_apply(subscription, data.validated_data), actor=request.user
        )
        return Response(WebhookSubscriptionOutputSerializer(subscription).data)


@extend_schema(tags=["webhooks"])
class WebhookSubscriptionRotateSecretView(TenantQuerysetMixin, generics.GenericAPIView):
    """A new signing secret (in this response only). The old one keeps signing deliveries, as a second
    signature, for ``grace_hours`` (default 24), so the receiver can switch without losing messages."""

    write_scope = SCOPE_ADMIN
    serializer_class = WebhookSubscriptionSecretOutputSerializer
    queryset = WebhookSubscription.objects.none()

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[WebhookSubscription]:
        return webhook_subscriptions(tenant=tenant)

    @extend_schema(request=RotateSecretInputSerializer, responses={200: WebhookSubscriptionSecretOutputSerializer})
    def post(self, request: Request, pk: int) -> Response:
        subscription = self.get_object()
        data = RotateSecretInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        subscription = rotate_secret(
            tenant=tenant_of(request),
            subscription=subscription,
            actor=request.user,
            grace_hours=data.validated_data["grace_hours"],
        )
        return Response(WebhookSubscriptionSecretOutputSerializer(subscription).data)


# --- the outbox -----------------------------------------------------------------------------------
class OutboxMessageFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=OutboxMessage.Status.choices)
    type = django_filters.ChoiceFilter(choices=[(t, t) for t in MESSAGE_TYPES])
    member_id = django_filters.CharFilter(help_text="The member's external id.")
    created_after = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="Written at or after this time (ISO 8601)."
    )
    created_before = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", help_text="Written before this time (ISO 8601)."
    )

    class Meta:
        model = OutboxMessage
        fields = ["status", "type", "member_id", "created_after", "created_before"]


@extend_schema(tags=["outbox"])
class OutboxMessageListView(TenantQuerysetMixin, generics.ListAPIView):
    """The tenant's outbox messages with their deliveries, newest first (``privilege:admin``: they
    carry every member's data)."""

    read_scope = SCOPE_ADMIN
    serializer_class = OutboxMessageOutputSerializer
    filterset_class = OutboxMessageFilter
    queryset = OutboxMessage.objects.none()

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[OutboxMessage]:
        return outbox_messages_with_deliveries(tenant=tenant)


@extend_schema(tags=["outbox"])
class OutboxMessageDetailView(TenantQuerysetMixin, generics.RetrieveAPIView):
    """One message with its deliveries: one per destination (each webhook subscription, the broker,
    each service adapter), with its own status, attempts and last answer."""

    read_scope = SCOPE_ADMIN
    serializer_class = OutboxMessageOutputSerializer
    queryset = OutboxMessage.objects.none()

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[OutboxMessage]:
        return outbox_messages_with_deliveries(tenant=tenant)


@extend_schema(tags=["outbox"])
class OutboxMessageReplayView(TenantQuerysetMixin, generics.GenericAPIView):
    """Replay the message's dead deliveries: due again now with fresh attempts and the same
    ``webhook-id`` (receivers dedupe). 409 ``nothing_to_replay`` when none is dead."""

    write_scope = SCOPE_ADMIN
    serializer_class = ReplayOutputSerializer
    queryset = OutboxMessage.objects.none()

    def tenant_queryset(self, tenant: Tenant) -> QuerySet[OutboxMessage]:
        return outbox_messages(tenant=tenant)

    @extend_schema(request=None, responses={200: ReplayOutputSerializer})
    def post(self, request: Request, pk: str) -> Response:
        require_well_formed_body(request)
        message = self.get_object()
        count = replay_dead_deliveries(tenant=tenant_of(request), message=message, actor=request.user)
        message.refresh_from_db(fields=["status"])
        return Response({"id": message.pk, "replayed": count, "status": message.status})


@extend_schema(tags=["outbox"])
class PublishEventView(APIView):
    """Publish a message by hand (seed 14.9), e.g. to re-announce a member's state to a new subscriber:
    written to the outbox with the member's next sequence number and delivered like any other (202).
    Honors ``Idempotency-Key``."""

    write_scope = SCOPE_ADMIN

    @extend_schema(request=PublishInputSerializer, responses={202: PublishedSerializer}, parameters=[IDEMPOTENCY_KEY])
    def post(self, request: Request) -> Response:
        data = PublishInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)

        def run() -> Response:
            message = publish_event(tenant=tenant_of(request), actor=request.user, **data.validated_data)
            body = {"id": str(message.pk), "type": message.type, "sequence": message.sequence, "status": message.status}
            return Response(body, status=status.HTTP_202_ACCEPTED)

        return idempotent(request, run)
