"""The append-only audit trail: who did what to which row, why, and in which request."""

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from tenancy.models import Tenant


class AppendOnlyError(Exception):
    """Raised when code tries to change or delete an audit entry."""


class AuditEntry(models.Model):
    """One audited action. Append-only: the ORM refuses updates and deletes, and on PostgreSQL a
    trigger refuses UPDATE and DELETE statements too (migration 0002)."""

    class Source(models.TextChoices):
        INTERNAL = "internal", "written by this service"
        API = "api", "recorded by a caller through POST /audit"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(default=timezone.now)
    actor = models.CharField(max_length=200, help_text="'user:<username>', 'service:<sub>' or 'system:<job>'.")
    action = models.CharField(max_length=100)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=100, blank=True)
    member_id = models.CharField(max_length=200, blank=True, help_text="The member's external id, if any.")
    before = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    after = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    reason = models.TextField(blank=True)
    correlation_id = models.CharField(max_length=128, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.INTERNAL)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["tenant", "-at"], name="audit_tenant_at"),
            models.Index(fields=["tenant", "member_id", "-at"], name="audit_tenant_member"),
            models.Index(fields=["tenant", "action", "-at"], name="audit_tenant_action"),
            models.Index(fields=["tenant", "target_type", "target_id"], name="audit_tenant_target"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor} {self.action}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("Audit entries are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Audit entries are append-only.")
