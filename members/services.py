"""Member writes (DOMAIN §2): the member row of a registration, profile updates, the IAM link. The
whole registration (default tiers, benefits, welcome points) is ``events.registration``."""

import re
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from audit.services import record_audit
from config.errors import Conflict, Invalid
from members.locks import lock_member
from members.models import Member
from outbox.emit import emit
from tenancy.models import Tenant

_MOBILE = re.compile(r"^\+[1-9]\d{6,14}$")
_MOBILE_SEPARATORS = re.compile(r"[\s\-().]")


class MemberConflict(Conflict):
    code = "member_conflict"
    default_detail = "A member with this external_id exists with different details."


@dataclass(frozen=True)
class Registration:
    """What a caller asks to register, normalised (omitted fields are blank)."""

    external_id: str
    name: str = ""
    email: str = ""
    mobile: str = ""
    attributes: dict[str, Any] | None = None

    def normalized(self) -> "Registration":
        return Registration(
            external_id=self.external_id.strip(),
            name=self.name.strip(),
            email=self.email.strip().lower(),
            mobile=_MOBILE_SEPARATORS.sub("", self.mobile),
            attributes=dict(self.attributes or {}),
        )

    def validate(self) -> None:
        errors: dict[str, list[str]] = {}
        if not self.external_id:
            errors["external_id"] = ["This field is required."]
        if self.email:
            try:
                validate_email(self.email)
            except ValidationError:
                errors["email"] = ["Enter a valid email address."]
        if self.mobile and not _MOBILE.match(self.mobile):
            errors["mobile"] = ["Enter the number in international form, e.g. +66812345678."]
        if errors:
            raise Invalid(errors=errors)

    def matches(self, member: Member) -> bool:
        return (member.name, member.email, member.mobile, member.attributes) == (
            self.name,
            self.email,
            self.mobile,
            self.attributes,
        )


def create_member(*, tenant: Tenant, registration: Registration, actor: Any) -> Member:
    """The member's own part of a registration, in the caller's transaction: the row (validated), its
    audit entry and the ``member.created`` message. Tiers, benefits and welcome points are the
    registration workflow's (``events.registration``)."""
    member = Member(
        tenant=tenant,
        external_id=registration.external_id,
        name=registration.name,
        email=registration.email,
        mobile=registration.mobile,
        attributes=registration.attributes or {},
    )
    member.full_clean(validate_unique=False, validate_constraints=False)
    member.save()
    record_audit(
        tenant=tenant,
        actor=actor,
        action="member.registered",
        target=member,
        member_id=member.external_id,
        after={"external_id": member.external_id, "status": member.status},
    )
    emit(
        tenant=tenant,
        type="member.created",
        member_id=member.external_id,
        occurred_at=member.registered_at,
        data={"external_id": member.external_id, "status": member.status, "registered_at": member.registered_at},
    )
    return member


PROFILE_FIELDS = ("name", "email", "mobile", "status", "attributes")


@transaction.atomic
def update_member_profile(*, tenant: Tenant, member: Member, changes: dict[str, Any], actor: Any) -> Member:
    """Change profile fields (``PROFILE_FIELDS``), validated and normalised as at registration.

    Erasure is its own operation (it blanks history too), so ``status`` cannot be set to ``erased``
    here, and an erased member's profile cannot be edited. Audited with the names of the changed
    fields only: the values may be personal data.
    """
    unknown = set(changes) - set(PROFILE_FIELDS)
    if unknown:
        raise Invalid(errors={field: ["Not a profile field."] for field in sorted(unknown)})
    member = lock_member(member)
    if member.status == Member.Status.ERASED:
        raise Conflict("An erased member's profile cannot be edited.")
    if changes.get("status") == Member.Status.ERASED:
        raise Invalid(errors={"status": ["Erasure is a separate operation."]})
    if "attributes" in changes and not isinstance(changes["attributes"], dict):
        raise Invalid(errors={"attributes": ['Must be a JSON object, e.g. {"country": "TH"}.']})
    profile = Registration(
        external_id=member.external_id,
        name=changes.get("name", member.name),
        email=changes.get("email", member.email),
        mobile=changes.get("mobile", member.mobile),
    ).normalized()
    profile.validate()
    before_status = member.status
    updated = {
        "name": profile.name,
        "email": profile.email,
        "mobile": profile.mobile,
        "status": changes.get("status", member.status),
        "attributes": changes.get("attributes", member.attributes),
    }
    changed = sorted(field for field, value in updated.items() if getattr(member, field) != value)
    for field in changed:
        setattr(member, field, updated[field])
    member.full_clean(validate_unique=False, validate_constraints=False)
    member.save(update_fields=[*changed, "updated_at"])
    record_audit(
        tenant=tenant,
        actor=actor,
        action="member.updated",
        target=member,
        member_id=member.external_id,
        before={"status": before_status},
        after={"status": member.status, "changed_fields": changed},
    )
    return member


@transaction.atomic
def link_member_to_iam(*, tenant: Tenant, member: Member, attributes: dict[str, Any], actor: Any) -> Member:
    """Record the IAM's answer to linking the member (DOMAIN §2): ``iam_linked`` becomes true and the
    IAM's ``attributes`` are merged into the member's (the IAM's value wins for a name both have), so
    tier criteria ``attribute:<name>`` see them. Audited with the names of the changed attributes
    only (the values may be personal data). An erased member is left as it is; a repeat of the same
    answer changes nothing and writes no audit entry."""
    if not isinstance(attributes, dict):
        raise Invalid(errors={"attributes": ["Must be a JSON object."]})
    member = lock_member(member)
    if member.status == Member.Status.ERASED:
        return member
    merged = {**member.attributes, **attributes}
    changed = sorted(
        name for name, value in attributes.items() if name not in member.attributes or member.attributes[name] != value
    )
    if member.iam_linked and not changed:
        return member
    before_linked = member.iam_linked
    member.attributes, member.iam_linked = merged, True
    member.full_clean(validate_unique=False, validate_constraints=False)
    member.save(update_fields=["attributes", "iam_linked", "updated_at"])
    record_audit(
        tenant=tenant,
        actor=actor,
        action="member.iam_linked",
        target=member,
        member_id=member.external_id,
        before={"iam_linked": before_linked},
        after={"iam_linked": True, "changed_attributes": changed},
    )
    return member
