"""Notifications to members through the Notification service (seed 14.9): requesting one (a service),
reading a member's (a selector), and recording what the provider answered (called by the relay's
Notification adapter in ``events.integrations``).

A request stores the :class:`~events.models.Notification` and a ``notification.requested`` outbox
message in one transaction; the relay delivers it at least once, with the notification's id as the
provider's ``Idempotency-Key``. With no ``NOTIFICATION_BASE_URL`` it is stored ``skipped`` and nothing
is sent.
"""

import json
import re
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from audit.services import record_audit
from config.errors import Invalid
from config.tracing import current_request_id
from events.models import Notification
from members.errors import MemberErased
from members.models import Member
from outbox.emit import emit
from tenancy.models import Tenant

TEMPLATE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
MAX_DATA_BYTES = 16 * 1024
# What each channel needs on the member's profile to reach them (push goes to the member's id).
RECIPIENT_FIELD: dict[str, str] = {Notification.Channel.EMAIL: "email", Notification.Channel.SMS: "mobile"}


def validate_request(*, channel: str, template: str, data: Any) -> None:
    """The rules of a notification request that do not depend on the member (422 on a breach)."""
    errors: dict[str, list[str]] = {}
    if channel not in Notification.Channel.values:
        errors["channel"] = [f"One of: {', '.join(Notification.Channel.values)}."]
    if not TEMPLATE.match(template):
        errors["template"] = ["1 to 100 letters, digits, '.', '_', ':' or '-', starting with a letter or digit."]
    if not isinstance(data, dict):
        errors["data"] = ['Must be a JSON object, e.g. {"tier": "gold"}.']
    elif len(json.dumps(data, cls=DjangoJSONEncoder)) > MAX_DATA_BYTES:
        errors["data"] = [f"At most {MAX_DATA_BYTES} bytes of JSON."]
    if errors:
        raise Invalid(errors=errors)


@transaction.atomic
def request_notification(
    *, tenant: Tenant, member: Member, channel: str, template: str, data: dict[str, Any], actor: Any
) -> Notification:
    """Store a notification for the member and announce it (``notification.requested``), audited.

    Refused with 422 when the member has no address for the channel (an email without an email
    address, an SMS without a mobile number), 409 ``member_erased`` for an erased member.
    """
    validate_request(channel=channel, template=template, data=data)
    if member.tenant_id != tenant.pk:
        raise ValueError("The member belongs to another tenant.")
    if member.status == Member.Status.ERASED:
        raise MemberErased("The member's personal data was erased; they cannot be notified.")
    field = RECIPIENT_FIELD.get(channel)
    if field and not getattr(member, field):
        raise Invalid(errors={"channel": [f"The member has no {field} to send a {channel} to."]})
    enabled = bool(settings.NOTIFICATION_BASE_URL)
    notification = Notification(
        tenant=tenant,
        member=member,
        channel=channel,
        template=template,
        data=data,
        status=Notification.Status.REQUESTED if enabled else Notification.Status.SKIPPED,
        correlation_id=current_request_id(),
    )
    notification.full_clean(validate_unique=False, validate_constraints=False)
    notification.save(force_insert=True)
    record_audit(
        tenant=tenant,
        actor=actor,
        action="notification.requested",
        target=notification,
        member_id=member.external_id,
        after={"channel": channel, "template": template, "status": notification.status},
    )
    # The message names the notification, not its data (which may be personal): the adapter reads it.
    emit(
        tenant=tenant,
        type="notification.requested",
        member_id=member.external_id,
        occurred_at=notification.created_at,
        data={
            "notification_id": str(notification.pk),
            "channel": channel,
            "template": template,
            "status": notification.status,
        },
    )
    return notification


def member_notifications(*, tenant: Tenant, member: Member) -> QuerySet[Notification]:
    """The member's notifications, newest first."""
    return (
        Notification.objects.filter(tenant=tenant, member=member)
        .select_related("member")
        .order_by("-created_at", "-id")
    )


# --- what the provider answered (the relay's Notification adapter) --------------------------------
def count_attempt(notification: Notification) -> None:
    Notification.objects.filter(pk=notification.pk).update(attempts=F("attempts") + 1, updated_at=timezone.now())


def record_sent(*, notification: Notification, external_id: str, delivered: bool) -> None:
    """The provider accepted it (``sent``), or already reports it ``delivered``."""
    status = Notification.Status.DELIVERED if delivered else Notification.Status.SENT
    Notification.objects.filter(pk=notification.pk).update(
        status=status, external_id=external_id[:200], last_error="", updated_at=timezone.now()
    )


def record_failure(*, notification: Notification, error: str, final: bool) -> None:
    """An attempt failed: ``failed`` when no retry follows, else the error is kept while it retries.
    A notification the provider already accepted keeps its status."""
    fields: dict[str, Any] = {"last_error": error[:2000], "updated_at": timezone.now()}
    if final:
        fields["status"] = Notification.Status.FAILED
    Notification.objects.filter(pk=notification.pk).exclude(
        status__in=[Notification.Status.SENT, Notification.Status.DELIVERED]
    ).update(**fields)
