"""The body of a member event (DOMAIN §7), shared by everything that reads one: the live endpoints
(``POST /member/{memberId}/event``, the batch, the points quote) in ``events.api`` and the member
simulation. It checks the shape only; rules that need the tenant or stored events are the services'."""

import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.utils import timezone
from rest_framework import serializers

from members.models import EVENT_TYPES

_NAME = re.compile(r"^[a-z0-9_\-]{1,64}$")
MAX_KEYS = 50


class AwareDateTimeField(serializers.DateTimeField):
    """ISO 8601 with an explicit offset (DOMAIN §7): a time without one is ambiguous, so refused."""

    def to_internal_value(self, value: Any) -> datetime:
        parsed = super().to_internal_value(value)
        if isinstance(value, str) and timezone.is_naive(datetime.fromisoformat(value.replace("Z", "+00:00"))):
            raise serializers.ValidationError("Give the offset, e.g. 2026-03-01T10:00:00+07:00.")
        return parsed


class EventInputSerializer(serializers.Serializer):
    """The body of ``POST /member/{memberId}/event`` (DOMAIN §7). Rules that need the tenant or stored
    events (currency, largest amount, future times, refunds) are the service's."""

    event_id = serializers.CharField(max_length=200)
    source = serializers.RegexField(r"^[A-Za-z0-9_.:\-]{1,64}$", max_length=64)
    type = serializers.ChoiceField(choices=EVENT_TYPES)
    occurred_at = AwareDateTimeField()
    amount = serializers.DecimalField(
        max_digits=14, decimal_places=2, min_value=Decimal(0), required=False, allow_null=True, default=None
    )
    currency = serializers.RegexField(r"^[A-Z]{3}$", required=False, allow_blank=True, default="")
    product = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    partner = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    channel = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    campaign_code = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    quantities = serializers.DictField(
        child=serializers.DecimalField(max_digits=14, decimal_places=4, min_value=Decimal(0)),
        required=False,
        default=dict,
    )
    attributes = serializers.DictField(required=False, default=dict)
    qualifying = serializers.BooleanField(required=False, default=True)
    refund_of = serializers.CharField(max_length=200, required=False, allow_null=True, default=None)

    def validate_quantities(self, value: dict[str, Decimal]) -> dict[str, int | str]:
        if len(value) > MAX_KEYS:
            raise serializers.ValidationError(f"At most {MAX_KEYS} quantities.")
        bad = [name for name in value if not _NAME.match(name)]
        if bad:
            raise serializers.ValidationError(f"Names are lowercase letters, digits, '-' or '_': {', '.join(bad)}.")
        return {k: int(v) if v == v.to_integral_value() else format(v.normalize(), "f") for k, v in value.items()}

    def validate_attributes(self, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > MAX_KEYS:
            raise serializers.ValidationError(f"At most {MAX_KEYS} attributes.")
        return value

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if data["type"] == "refund":
            errors = {}
            if not data.get("refund_of"):
                errors["refund_of"] = ["A refund names the event it refunds."]
            if not data.get("amount"):
                errors["amount"] = ["A refund needs a positive amount."]
            if errors:
                raise serializers.ValidationError(errors)
        elif data.get("refund_of"):
            raise serializers.ValidationError({"refund_of": ["Only a refund event refunds another."]})
        return data


class PointQuoteInputSerializer(EventInputSerializer):
    """An event to quote (``POST /member/{memberId}/points/calculate``): nothing is recorded, so it
    needs no ``event_id``; ``source`` only matters to rules that name one; ``occurred_at`` defaults
    to now."""

    event_id = None
    source = serializers.RegexField(
        r"^[A-Za-z0-9_.:\-]{1,64}$", max_length=64, default="", help_text="Omitted: none (only rules for any source)."
    )
    occurred_at = AwareDateTimeField(default=timezone.now, help_text="Defaults to now.")


class BatchEventInputSerializer(EventInputSerializer):
    member_id = serializers.CharField(max_length=200)
