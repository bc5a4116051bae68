"""Tenants (organisations running loyalty programs) and which staff users may administer them."""

import zoneinfo
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F

from tenancy.history import tracked


def validate_timezone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"{value!r} is not an IANA time zone (e.g. 'Asia/Bangkok').") from exc


class Tenant(models.Model):
    """An organisation running one or more loyalty programs; every other row belongs to one."""

    slug = models.SlugField(max_length=64, unique=True, help_text="The `tenant` claim of API tokens.")
    name = models.CharField(max_length=200)
    timezone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_timezone],
        help_text="IANA zone; every calendar boundary (day, ISO week, month, year) is computed in it.",
    )
    currency = models.CharField(
        max_length=3,
        default="USD",
        validators=[RegexValidator(r"^[A-Z]{3}$", "An ISO 4217 code in capitals, e.g. USD.")],
    )
    auto_enroll = models.BooleanField(
        default=False, help_text="An event for an unknown member registers it instead of failing."
    )
    max_event_amount = models.DecimalField(
        max_digits=14,
        decimal_places=2,
        default=Decimal("1000000.00"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Events with a larger amount are refused as absurd (422).",
    )
    max_event_age_days = models.PositiveIntegerField(
        default=365, help_text="Events that occurred longer ago are stored as rejected."
    )
    config_version = models.PositiveBigIntegerField(
        default=0, editable=False, help_text="Bumped by every configuration save; keys the engine's cache."
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    history = tracked(excluded_fields=["config_version"])

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name

    def bump_config_version(self) -> None:
        """Atomically mark the tenant's configuration as changed (cached snapshots become stale)."""
        Tenant.objects.filter(pk=self.pk).update(config_version=F("config_version") + 1)
        self.refresh_from_db(fields=["config_version"])


class TenantMembership(models.Model):
    """A staff user who may administer a tenant in the admin portal. Superusers see every tenant."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tenant_memberships")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "tenant"], name="uniq_tenant_membership")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant}"


class IdempotencyKey(models.Model):
    """A caller's ``Idempotency-Key`` and the response it got, kept 24 hours (API.md).

    ``response_status`` is null while the first request is still being processed.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    fingerprint = models.CharField(max_length=64, help_text="sha256 of method, path and body.")
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="uniq_idempotency_key")]
        indexes = [models.Index(fields=["expires_at"], name="idempotency_expiry")]

    def __str__(self) -> str:
        return self.key
