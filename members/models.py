"""Member profiles (DOMAIN §2). ``external_id`` is the IAM subject and the ``{memberId}`` of every URL."""

from django.db import models
from django.utils import timezone

from tenancy.history import tracked
from tenancy.models import Tenant


class Member(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        SUSPENDED = "suspended", "suspended: events stored, nothing earned, no tier movement"
        ERASED = "erased", "erased: personal data blanked (GDPR/PDPA)"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="members")
    external_id = models.CharField(max_length=200, help_text="The IAM subject; unique per tenant.")
    name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(max_length=254, blank=True)
    mobile = models.CharField(max_length=20, blank=True, help_text="E.164, e.g. +66812345678.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    attributes = models.JSONField(default=dict, blank=True, help_text="Attributes from the IAM, used by criteria.")
    registered_at = models.DateTimeField(default=timezone.now)
    iam_linked = models.BooleanField(default=False)
    last_event_at = models.DateTimeField(null=True, blank=True, help_text="occurred_at of the latest counted event.")
    updated_at = models.DateTimeField(auto_now=True)

    history = tracked(excluded_fields=["last_event_at", "updated_at"])

    class Meta:
        ordering = ["-registered_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "external_id"], name="uniq_member_external_id")]
        indexes = [models.Index(fields=["tenant", "status"], name="member_tenant_status")]

    def __str__(self) -> str:
        return self.external_id
