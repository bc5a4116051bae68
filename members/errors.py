"""The member's own domain errors: raised by any context that finds the member missing or erased."""

from config.errors import Conflict, NotFound


class MemberNotFound(NotFound):
    code = "member_not_found"
    default_detail = "No member with this id."


class MemberErased(Conflict):
    code = "member_erased"
    default_detail = "The member was erased; their tiers cannot change."
