"""Calendar time in the tenant's zone for the tier engine: local days and qualification periods
(calendar year, calendar month, anniversary) as exact local-midnight instants."""

from datetime import date, datetime, time, timedelta, tzinfo

from tiers.types import TierTypeSpec


def local_day(at: datetime, tz: tzinfo) -> date:
    return at.astimezone(tz).date()


def day_start(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=tz)


def day_end(day: date, tz: tzinfo) -> datetime:
    """The exclusive end of a local day: the next local midnight."""
    return day_start(day + timedelta(days=1), tz)


def _anniversary(year: int, anchor: date) -> date:
    try:
        return anchor.replace(year=year)
    except ValueError:  # 29 February in a common year
        return date(year, 2, 28)


def period_of(qualification: str, at: datetime, tz: tzinfo, enrolled_at: datetime) -> tuple[datetime, datetime]:
    """The calendar period containing ``at``, as [start, end) local-midnight instants."""
    day = local_day(at, tz)
    if qualification == "calendar_year":
        return day_start(date(day.year, 1, 1), tz), day_start(date(day.year + 1, 1, 1), tz)
    if qualification == "calendar_month":
        nxt = date(day.year + (day.month == 12), day.month % 12 + 1, 1)
        return day_start(day.replace(day=1), tz), day_start(nxt, tz)
    if qualification == "anniversary":
        anchor = local_day(enrolled_at, tz)
        start = _anniversary(day.year, anchor)
        if start > day:
            start = _anniversary(day.year - 1, anchor)
        return day_start(start, tz), day_start(_anniversary(start.year + 1, anchor), tz)
    raise ValueError(f"{qualification} has no calendar periods")


def previous_period(
    spec: TierTypeSpec, start: datetime, tz: tzinfo, enrolled_at: datetime
) -> tuple[datetime, datetime]:
    return period_of(spec.qualification, start - timedelta(seconds=1), tz, enrolled_at)


def next_period_end(spec: TierTypeSpec, end: datetime, tz: tzinfo, enrolled_at: datetime) -> datetime:
    return period_of(spec.qualification, end, tz, enrolled_at)[1]
