import json
from typing import Any

from rest_framework import serializers

from config.serializers import ApiModelSerializer
from events.publish import MAX_PUBLISH_DATA_BYTES, PUBLISHABLE_TYPES
from members.models import MemberEvent
from outbox.models import MESSAGE_TYPES, Delivery, OutboxMessage, WebhookSubscription
from outbox.services import MAX_GRACE_HOURS
from tiers.api.serializers import MemberTierOutputSerializer


class EventBatchInputSerializer(serializers.Serializer):
    events = serializers.ListField(child=serializers.DictField(), min_length=1, max_length=1000)


class EventResultSerializer(serializers.Serializer):
    """The result of an evaluated event (also the 201 body of a synchronous post)."""

    id = serializers.IntegerField()
    event_id = serializers.CharField()
    source = serializers.CharField()
    status = serializers.CharField()
    points = serializers.DictField()
    tier_changes = serializers.ListField(child=serializers.DictField())
    benefits = serializers.DictField()
    note = serializers.CharField(required=False)


class EventAcceptedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    url = serializers.CharField()


class EventOutputSerializer(ApiModelSerializer):
    member_id = serializers.CharField(source="member.external_id")
    result = serializers.JSONField(source="result_body")

    class Meta:
        model = MemberEvent
        fields = [
            "id",
            "event_id",
            "source",
            "type",
            "member_id",
            "occurred_at",
            "received_at",
            "processed_at",
            "status",
            "attempts",
            "last_error",
            "amount",
            "currency",
            "product",
            "partner",
            "channel",
            "campaign_code",
            "quantities",
            "attributes",
            "qualifying",
            "result",
        ]
        read_only_fields = fields


class BatchOutcomeSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    event_id = serializers.CharField(allow_null=True)
    source = serializers.CharField(allow_null=True)
    outcome = serializers.ChoiceField(choices=["accepted", "replayed", "rejected"])
    id = serializers.IntegerField(required=False)
    code = serializers.CharField(required=False)
    errors = serializers.DictField(required=False)


class EventBatchOutputSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    replayed = serializers.IntegerField()
    rejected = serializers.IntegerField()
    results = BatchOutcomeSerializer(many=True)


class TierEvaluationSerializer(serializers.Serializer):
    dry_run = serializers.BooleanField()
    tier_changes = serializers.ListField(child=serializers.DictField())
    tiers = MemberTierOutputSerializer(
        many=True,
        help_text="The member's tiers afterwards (as they stand, on a dry run), with progress as GET .../tier.",
    )


# --- webhook subscriptions, the outbox, published messages (DOMAIN §8) -----------------------------
SUBSCRIPTION_FIELDS = ["id", "url", "description", "event_types", "active"]
SUBSCRIPTION_READ_ONLY = ["disabled_reason", "previous_secret_expires_at", "created_at", "updated_at"]


def _message_types_field(**kwargs: Any) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.CharField(max_length=64),
        max_length=len(MESSAGE_TYPES),
        help_text=f"Message types it receives ({', '.join(MESSAGE_TYPES)}); empty = every type.",
        **kwargs,
    )


class WebhookSubscriptionOutputSerializer(ApiModelSerializer):
    """A subscription as read: never its secret."""

    event_types = serializers.ListField(child=serializers.CharField(), read_only=True)
    previous_secret_expires_at = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="While a rotation's grace period lasts, deliveries are also signed with the previous secret.",
    )

    class Meta:
        model = WebhookSubscription
        fields = [*SUBSCRIPTION_FIELDS, *SUBSCRIPTION_READ_ONLY]
        read_only_fields = fields


class WebhookSubscriptionSecretOutputSerializer(WebhookSubscriptionOutputSerializer):
    """The create and rotate-secret responses: the only ones that show the signing secret."""

    secret = serializers.CharField(
        read_only=True, help_text="whsec_ + base64 of the HMAC key (Standard Webhooks). Shown only here; store it."
    )

    class Meta(WebhookSubscriptionOutputSerializer.Meta):
        fields = [*SUBSCRIPTION_FIELDS, "secret", *SUBSCRIPTION_READ_ONLY]
        read_only_fields = fields


class WebhookSubscriptionInputSerializer(ApiModelSerializer):
    """The shape of a subscription; the URL's safety and the types are the service's to judge (422)."""

    event_types = _message_types_field(default=list)

    class Meta:
        model = WebhookSubscription
        fields = SUBSCRIPTION_FIELDS
        read_only_fields = ["id"]
        extra_kwargs = {"description": {"default": ""}, "active": {"default": True}}


class RotateSecretInputSerializer(serializers.Serializer):
    grace_hours = serializers.IntegerField(
        min_value=0,
        max_value=MAX_GRACE_HOURS,
        default=24,
        help_text="How long the old secret still signs deliveries (alongside the new one).",
    )


class DeliveryOutputSerializer(ApiModelSerializer):
    class Meta:
        model = Delivery
        fields = [
            "id",
            "destination",
            "subscription",
            "status",
            "attempts",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "created_at",
            "delivered_at",
        ]
        read_only_fields = fields


MESSAGE_FIELDS = [
    "id",
    "type",
    "member_id",
    "sequence",
    "occurred_at",
    "correlation_id",
    "data",
    "status",
    "created_at",
    "delivered_at",
]


class OutboxMessageOutputSerializer(ApiModelSerializer):
    """A message as written (its envelope's fields) with its delivery state, and one delivery per
    destination (each webhook subscription, the broker, each service adapter)."""

    data = serializers.DictField(read_only=True)
    deliveries = DeliveryOutputSerializer(many=True, read_only=True)

    class Meta:
        model = OutboxMessage
        fields = [*MESSAGE_FIELDS, "deliveries"]
        read_only_fields = fields


class ReplayOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    replayed = serializers.IntegerField(help_text="How many dead deliveries are due again.")
    status = serializers.CharField(help_text="The message's status afterwards.")


class PublishInputSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=PUBLISHABLE_TYPES)
    member_id = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        default="",
        help_text="The member's external id; empty = the tenant's own stream.",
    )
    data = serializers.DictField(
        required=False, default=dict, help_text=f"A JSON object of at most {MAX_PUBLISH_DATA_BYTES} bytes."
    )

    def validate_data(self, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value, separators=(",", ":"), default=str)) > MAX_PUBLISH_DATA_BYTES:
            raise serializers.ValidationError(f"At most {MAX_PUBLISH_DATA_BYTES} bytes of JSON.")
        return value


class PublishedSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    type = serializers.CharField()
    sequence = serializers.IntegerField(help_text="The message's number in its member's stream.")
    status = serializers.CharField()
