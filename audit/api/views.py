import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response

from audit.api.serializers import AuditEntryInputSerializer, AuditEntryOutputSerializer
from audit.models import AuditEntry
from audit.selectors import audit_entries
from audit.services import create_audit_entry
from config.api import SCOPE_AUDIT, TenantQuerysetMixin, tenant_of


class AuditEntryFilter(django_filters.FilterSet):
    member_id = django_filters.CharFilter()
    action = django_filters.CharFilter()
    target_type = django_filters.CharFilter()
    target_id = django_filters.CharFilter()
    actor = django_filters.CharFilter()
    since = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="lt")

    class Meta:
        model = AuditEntry
        fields = ["member_id", "action", "target_type", "target_id", "actor", "since", "until"]


@extend_schema(tags=["audit"])
class AuditEntryListCreateView(TenantQuerysetMixin, generics.ListAPIView):
    """List the tenant's audit trail (newest first), or record an entry on behalf of another service."""

    read_scope = SCOPE_AUDIT
    write_scope = SCOPE_AUDIT
    serializer_class = AuditEntryOutputSerializer
    filterset_class = AuditEntryFilter

    queryset = AuditEntry.objects.none()

    def tenant_queryset(self, tenant):
        return audit_entries(tenant=tenant)

    @extend_schema(request=AuditEntryInputSerializer, responses={201: AuditEntryOutputSerializer})
    def post(self, request: Request) -> Response:
        data = AuditEntryInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        entry = create_audit_entry(tenant=tenant_of(request), actor=request.user, **data.validated_data)
        return Response(AuditEntryOutputSerializer(entry).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["audit"])
class AuditEntryDetailView(TenantQuerysetMixin, generics.RetrieveAPIView):
    read_scope = SCOPE_AUDIT
    serializer_class = AuditEntryOutputSerializer

    queryset = AuditEntry.objects.none()

    def tenant_queryset(self, tenant):
        return audit_entries(tenant=tenant)
