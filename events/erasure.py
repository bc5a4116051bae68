"""Erasure (GDPR/PDPA, DOMAIN §2 and API.md "Privacy"): a member's personal data blanked for good.

``erase_member`` locks the member and, in one transaction: blanks the profile (name, email, mobile,
attributes) in the live row and in every history row of it, blanks the attributes of their stored
events and the data of their notifications, removes personal keys from the payloads of their outbox
messages, sets the status ``erased``, audits (with the reason, without personal data) and emits
``member.erased``. The pseudonymous rows stay (external id, tiers, points, grants, events' amounts):
the ledger and the history still add up.

Choices where DOMAIN.md is silent:

* Erasure is irreversible and idempotent: erasing an erased member changes nothing and writes no second
  audit entry or message (the answer is the same member).
* "Personal keys" in outbox payloads are ``name``, ``email``, ``mobile``, ``attributes`` and ``phone``,
  at any depth: the service's own messages carry none, but ``POST /event/publish`` takes free data.
* Afterwards every event for the member is refused (409 ``member_erased``), as is a profile edit.
"""

from typing import Any

from django.db import transaction

from audit.services import record_audit
from config.errors import Invalid
from events.models import Notification
from members.locks import lock_member
from members.models import Member, MemberEvent
from outbox.emit import emit
from outbox.models import OutboxMessage
from tenancy.models import Tenant

BLANK_PROFILE: dict[str, Any] = {"name": "", "email": "", "mobile": "", "attributes": {}}
PERSONAL_KEYS = frozenset({"name", "email", "mobile", "phone", "attributes"})


def without_personal_keys(value: Any) -> Any:
    """``value`` with every key in ``PERSONAL_KEYS`` removed, at any depth."""
    if isinstance(value, dict):
        return {k: without_personal_keys(v) for k, v in value.items() if k not in PERSONAL_KEYS}
    if isinstance(value, list):
        return [without_personal_keys(v) for v in value]
    return value


@transaction.atomic
def erase_member(*, tenant: Tenant, member: Member, reason: str, actor: Any) -> tuple[Member, bool]:
    """Erase the member's personal data (module docstring). Returns the member and whether this call
    erased them (False: they already were)."""
    if not reason.strip():
        raise Invalid(errors={"reason": ["Say why the member is erased (e.g. their request of 2026-12-01)."]})
    member = lock_member(member)
    if member.status == Member.Status.ERASED:
        return member, False
    before_status = member.status
    for field, blank in BLANK_PROFILE.items():
        setattr(member, field, blank)
    member.status = Member.Status.ERASED
    member.save(update_fields=[*BLANK_PROFILE, "status", "updated_at"])
    Member.history.filter(id=member.pk).update(**BLANK_PROFILE)
    MemberEvent.objects.filter(tenant=tenant, member=member).update(attributes={})
    Notification.objects.filter(tenant=tenant, member=member).update(data={})
    scrubbed = []
    for message in OutboxMessage.objects.filter(tenant=tenant, member_id=member.external_id):
        clean = without_personal_keys(message.data)
        if clean != message.data:
            message.data = clean
            scrubbed.append(message)
    OutboxMessage.objects.bulk_update(scrubbed, ["data"])
    record_audit(
        tenant=tenant,
        actor=actor,
        action="member.erased",
        target=member,
        member_id=member.external_id,
        before={"status": before_status},
        after={"status": member.status},
        reason=reason,
    )
    emit(tenant=tenant, type="member.erased", member_id=member.external_id, data={"external_id": member.external_id})
    return member, True
