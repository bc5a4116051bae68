"""Messages published by hand (seed 14.9 ``POST /event/publish``): an operator's announcement about a
member, written to the outbox like any other. Here, not in ``outbox``, because it checks the member."""

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from audit.services import record_audit
from config.errors import Invalid
from members.errors import MemberNotFound
from members.models import Member
from outbox.emit import emit
from outbox.models import MESSAGE_TYPES, OutboxMessage
from tenancy.models import Tenant

MAX_PUBLISH_DATA_BYTES = 32 * 1024
# What may be published by hand: the announcements of DOMAIN §8, not commands to another service
# (``notification.*`` messages belong to a stored Notification and its adapter).
PUBLISHABLE_TYPES = tuple(t for t in MESSAGE_TYPES if not t.startswith("notification."))


@transaction.atomic
def publish_event(
    *,
    tenant: Tenant,
    type: str,  # noqa: A002 - the message field is called "type" (DOMAIN §8)
    member_id: str,
    data: dict[str, Any],
    actor: Any,
) -> OutboxMessage:
    """Publish a message by hand (seed 14.9 ``POST /event/publish``), e.g. to re-announce a member's
    state to a new subscriber: an outbox message like any other, with the member's next sequence
    number, delivered by the relay. ``type`` must be one of ``PUBLISHABLE_TYPES``; ``member_id`` (an
    external id) must be a member of the tenant, or empty for the tenant's own stream; ``data`` is a
    JSON object of at most ``MAX_PUBLISH_DATA_BYTES``. Audited (``outbox.published``)."""
    errors: dict[str, list[str]] = {}
    if type not in PUBLISHABLE_TYPES:
        errors["type"] = [f"Not a publishable message type: {type!r}. Known: {', '.join(PUBLISHABLE_TYPES)}."]
    if not isinstance(data, dict):
        errors["data"] = ["A JSON object."]
    elif len(json.dumps(data, cls=DjangoJSONEncoder, separators=(",", ":"))) > MAX_PUBLISH_DATA_BYTES:
        errors["data"] = [f"At most {MAX_PUBLISH_DATA_BYTES} bytes of JSON."]
    if errors:
        raise Invalid(errors=errors)
    if member_id and not Member.objects.filter(tenant=tenant, external_id=member_id).exists():
        raise MemberNotFound()
    message = emit(tenant=tenant, type=type, member_id=member_id, data=data)
    record_audit(
        tenant=tenant,
        actor=actor,
        action="outbox.published",
        target=message,
        member_id=member_id,
        after={"type": message.type, "sequence": message.sequence},
    )
    return message
