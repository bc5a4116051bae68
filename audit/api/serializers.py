from rest_framework import serializers

from audit.models import AuditEntry
from config.serializers import ApiModelSerializer


class AuditEntryOutputSerializer(ApiModelSerializer):
    class Meta:
        model = AuditEntry
        fields = [
            "id",
            "at",
            "actor",
            "action",
            "target_type",
            "target_id",
            "member_id",
            "before",
            "after",
            "reason",
            "correlation_id",
            "source",
        ]
        read_only_fields = fields


class AuditEntryInputSerializer(serializers.Serializer):
    action = serializers.RegexField(r"^[a-z0-9_.:\-]+$", max_length=100)
    target_type = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    target_id = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    member_id = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    before = serializers.JSONField(required=False, allow_null=True, default=None)
    after = serializers.JSONField(required=False, allow_null=True, default=None)
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
