"""Notifications (seed 14.9): ask the Notification service to send one to a member, and read a
member's notifications with their delivery status."""

from typing import Any

import django_filters
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import MEMBER_ID, TenantQuerysetMixin, tenant_of
from config.serializers import ApiModelSerializer
from events.models import Notification
from events.notifications import MAX_DATA_BYTES, TEMPLATE, member_notifications, request_notification
from members.selectors import get_member
from tenancy.idempotency import idempotent


# --- serializers ----------------------------------------------------------------------------------
class NotificationSendInputSerializer(serializers.Serializer):
    member_id = serializers.CharField(max_length=200, help_text="The member's external id.")
    channel = serializers.ChoiceField(choices=Notification.Channel.choices)
    template = serializers.RegexField(
        TEMPLATE, max_length=100, help_text="The provider's template name, e.g. 'tier-upgrade'."
    )
    data = serializers.JSONField(
        required=False, default=dict, help_text=f"Template variables: a JSON object (at most {MAX_DATA_BYTES} bytes)."
    )

    def validate_data(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise serializers.ValidationError('Must be a JSON object, e.g. {"tier": "gold"}.')
        return value


class NotificationOutputSerializer(ApiModelSerializer):
    member_id = serializers.CharField(source="member.external_id", read_only=True)

    class Meta:
        model = Notification
        fields = [
            "id",
            "member_id",
            "channel",
            "template",
            "data",
            "status",
            "external_id",
            "attempts",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


# --- views ----------------------------------------------------------------------------------------
@extend_schema(tags=["notifications"])
class NotificationSendView(APIView):
    """Send a notification to a member: stored and announced (``notification.requested``) at once,
    sent by the relay in the background (202). ``status`` is ``requested``, or ``skipped`` when no
    Notification service is configured. Honors ``Idempotency-Key``."""

    @extend_schema(request=NotificationSendInputSerializer, responses={202: NotificationOutputSerializer})
    def post(self, request: Request) -> Response:
        data = NotificationSendInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        tenant = tenant_of(request)
        member = get_member(tenant=tenant, external_id=values["member_id"])

        def run() -> Response:
            notification = request_notification(
                tenant=tenant,
                member=member,
                channel=values["channel"],
                template=values["template"],
                data=values["data"],
                actor=request.user,
            )
            return Response(NotificationOutputSerializer(notification).data, status=status.HTTP_202_ACCEPTED)

        return idempotent(request, run)


class NotificationFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Notification.Status.choices)
    channel = django_filters.ChoiceFilter(choices=Notification.Channel.choices)

    class Meta:
        model = Notification
        fields = ["status", "channel"]


@extend_schema(tags=["notifications"], parameters=[MEMBER_ID])
class NotificationStatusView(TenantQuerysetMixin, generics.ListAPIView):
    """The member's notifications with their delivery status, newest first (paginated)."""

    serializer_class = NotificationOutputSerializer
    filterset_class = NotificationFilter
    queryset = Notification.objects.none()

    def tenant_queryset(self, tenant: Any) -> Any:
        member = get_member(tenant=tenant, external_id=self.kwargs["member_id"])
        return member_notifications(tenant=tenant, member=member)


urlpatterns = [
    path("notification/send", NotificationSendView.as_view(), name="notification-send"),
    path("notification/<str:member_id>/status", NotificationStatusView.as_view(), name="notification-status"),
]
