"""Cap bucket arithmetic (DOMAIN §4.4), pure: which day / ISO week / month buckets of tenant time an
instant falls in, the stored key of each allowance, which buckets a cap reads, and how far a change in
one month can reach. Live awarding (``points.caps``, ``points.services``) and the simulation kernel
both count buckets with these functions."""

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta, tzinfo

from points.types import Award, ConversionRuleSpec, Policy

PERIODS = ("day", "week", "month")


def bucket_keys(at: datetime, tz: tzinfo) -> dict[str, str]:
    """The cap buckets of an instant, in tenant time: day, ISO week, month."""
    local = at.astimezone(tz).date()
    year, week, _ = local.isocalendar()
    return {"day": local.isoformat(), "week": f"{year}-W{week:02d}", "month": f"{local.year}-{local.month:02d}"}


def bucket_names(rule_id: int | None, keys: dict[str, str]) -> dict[str, str]:
    """Engine allowance name → stored bucket key, for one rule (or the global buckets with None)."""
    owner = f"rule:{rule_id}" if rule_id is not None else "global"
    return {f"{owner}:{period}": f"{owner}:{period}:{key}" for period, key in keys.items()}


def capped_bucket_names(rules: Sequence[ConversionRuleSpec], policy: Policy, keys: dict[str, str]) -> dict[str, str]:
    """Engine allowance name → stored bucket key, for the period buckets some cap reads (the engine
    needs no other totals; every bucket is still counted, so a cap added later finds its total)."""
    names = {}
    for period, key in keys.items():
        if getattr(policy, f"cap_per_{period}") is not None:
            names[f"global:{period}"] = f"global:{period}:{key}"
        for rule in rules:
            if getattr(rule, f"cap_per_{period}") is not None:
                names[f"rule:{rule.id}:{period}"] = f"rule:{rule.id}:{period}:{key}"
    return names


def award_buckets(rule_id: int | None, keys: dict[str, str]) -> tuple[str, ...]:
    """Every stored bucket an award of ``rule_id`` counts in: the rule's and the global ones."""
    return (*bucket_names(rule_id, keys).values(), *bucket_names(None, keys).values())


def cut_by_period(award: Award) -> bool:
    """Whether a day, week or month cap cut the award (what makes a late arrival re-allocate)."""
    return bool(award.capped_by) and award.capped_by.rsplit(":", 1)[-1] in PERIODS  # type: ignore[union-attr]


def share_buckets(rule_id: int | None, at: datetime, tz: tzinfo) -> tuple[tuple[str, str], ...]:
    """(allowance name, bucket key) in the engine's order: per period, the rule's then the global."""
    keys = bucket_keys(at, tz)
    return tuple(
        pair
        for period in PERIODS
        for pair in (
            (f"rule:{period}", f"rule:{rule_id}:{period}:{keys[period]}"),
            (f"global:{period}", f"global:{period}:{keys[period]}"),
        )
    )


def period_caps(rules: Sequence[ConversionRuleSpec], policy: Policy) -> dict[str, int | None]:
    """Bucket key prefix (``rule:7:week``, ``global:day``) → its cap, None when uncapped."""
    caps: dict[str, int | None] = {}
    for period in PERIODS:
        caps[f"global:{period}"] = getattr(policy, f"cap_per_{period}")
        for rule in rules:
            caps[f"rule:{rule.id}:{period}"] = getattr(rule, f"cap_per_{period}")
    return caps


def horizon(at: datetime, tz: tzinfo) -> datetime:
    """The end of the last ISO week that touches the month of ``at``: every bucket sharing a day, week
    or month with ``at`` ends by then."""
    local = at.astimezone(tz).date()
    month_end = date(local.year + (local.month == 12), local.month % 12 + 1, 1)
    last = month_end - timedelta(days=1)
    return datetime.combine(last + timedelta(days=7 - last.weekday()), time.min, tzinfo=tz)
