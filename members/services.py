"""Member writes: registration (DOMAIN §2)."""

import re
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from audit.services import record_audit
from config.errors import Conflict, Invalid
from events.services import emit
from members.models import Member
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


def register_member(*, tenant: Tenant, registration: Registration, actor: Any) -> tuple[Member, bool]:
    """Register a member, idempotently on ``external_id``: returns ``(member, created)``.

    A repeat with the same details returns the existing member (``created=False``); different details
    are a 409 ``member_conflict``. A new member gets the default tier of every active tier type, an
    audit entry and a ``member.created`` message, all in one transaction. Two concurrent registrations
    of one ``external_id`` create one member: the loser of the unique-constraint race re-reads it.
    """
    registration = registration.normalized()
    registration.validate()
    existing = Member.objects.filter(tenant=tenant, external_id=registration.external_id).first()
    if existing is None:
        try:
            return _create_member(tenant=tenant, registration=registration, actor=actor), True
        except IntegrityError:
            existing = Member.objects.get(tenant=tenant, external_id=registration.external_id)
    if not registration.matches(existing):
        raise MemberConflict()
    return existing, False


@transaction.atomic
def _create_member(*, tenant: Tenant, registration: Registration, actor: Any) -> Member:
    from tiers.services import assign_default_tiers_locked

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
    assign_default_tiers_locked(tenant=tenant, member=member, actor=actor, now=member.registered_at)
    return member
