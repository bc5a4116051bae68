"""What the engines read of a member event, as protocols: a stored ``MemberEvent`` satisfies them, and
so does the simulation kernel's in-memory record."""

from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol


class EventFacts(Protocol):
    """What the engines read of a member event: a stored ``MemberEvent`` or a simulation record."""

    @property
    def type(self) -> str: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def amount(self) -> Decimal | None: ...
    @property
    def quantities(self) -> Any: ...
    @property
    def product(self) -> str: ...
    @property
    def partner(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def campaign_code(self) -> str: ...


class Activity(EventFacts, Protocol):
    """What metric contributions read of an event, besides its facts."""

    @property
    def qualifying(self) -> bool: ...
    @property
    def refunded_amount(self) -> Decimal: ...
