"""Member metrics as daily aggregates (DOMAIN §3.3 metric table), kept in step with the event log.

Each counted event adds its *contributions* to the member's :class:`MetricDay` rows of the local day
(tenant time) it occurred on, with one atomic upsert; a refund subtracts on the day of the purchase it
refunds, so the period that purchase belongs to drops (DOMAIN §4.5). The event table stays the truth:
:func:`rebuild_metrics` recomputes every row from the counted events.
"""

from collections import defaultdict
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from zoneinfo import ZoneInfo

from django.db import connection

from members.models import Member, MetricDay
from members.types import Activity
from tenancy.models import Tenant
from tiers.types import DailyMetrics, metric_scope

QUANTUM = Decimal("0.0001")


Contributions = dict[tuple[date, str], Decimal]


def local_date(at: datetime, tenant: Tenant) -> date:
    return at.astimezone(ZoneInfo(tenant.timezone)).date()


def contributions(
    event: Activity, tenant: Tenant, *, original: Activity | None = None, points: int = 0
) -> Contributions:
    """What ``event`` adds to which (day, metric): :func:`base_contributions`, and the same again under
    the scoped names of its product and partner (``spend@partner:bank-co``…), which tier types limited
    to a product or partner read (DOMAIN §1)."""
    base = base_contributions(event, tenant, original=original, points=points)
    source = original if event.type == "refund" and original is not None else event
    out = dict(base)
    for suffix in _scopes(source):
        for (day, metric), value in base.items():
            out[(day, metric + suffix)] = value
    return out


def _scopes(event: Activity) -> set[str]:
    return {metric_scope(p, q) for p in {"", event.product} for q in {"", event.partner}} - {""}


def points_contributions(event: Activity, tenant: Tenant, points: int) -> Contributions:
    """A later change to what a qualifying ``event`` earned (an adjustment, a rollback): ``points`` and
    its scoped copies on the event's day."""
    if not event.qualifying or not points:
        return {}
    day = local_date(event.occurred_at, tenant)
    return {(day, "points" + suffix): Decimal(points) for suffix in {"", *_scopes(event)}}


def base_contributions(
    event: Activity, tenant: Tenant, *, original: Activity | None = None, points: int = 0
) -> Contributions:
    """What ``event`` adds to which (day, metric).

    - every event: ``events:<type>`` +1 on its own day;
    - a qualifying event: ``spend`` (its amount), ``transactions`` (+1 for a transaction),
      ``quantity:<name>`` (its quantities) on its own day;
    - a refund of a qualifying ``original`` (whose ``refunded_amount`` already includes this refund):
      minus the refunded amount and the quantities pro rata on the original's day, and
      ``transactions`` -1 once the original is refunded in full;
    - ``points``: what the event earned (or, for a refund, the negative of what it reversed), on the day
      the points belong to, when that event qualifies.
    """
    out: Contributions = defaultdict(Decimal)
    day = local_date(event.occurred_at, tenant)
    out[(day, f"events:{event.type}")] += 1
    if event.type == "refund":
        if original is not None and original.qualifying and original.amount:
            refunded_after = original.refunded_amount
            refunded_before = refunded_after - (event.amount or Decimal(0))
            o_day = local_date(original.occurred_at, tenant)
            out[(o_day, "spend")] -= event.amount or Decimal(0)
            for name, qty in original.quantities.items():
                # Cumulative rounding: the refunds of one purchase reverse exactly its quantities in all.
                total = Decimal(str(qty))
                out[(o_day, f"quantity:{name}")] -= _share(total, refunded_after, original.amount) - _share(
                    total, refunded_before, original.amount
                )
            if original.type == "transaction" and original.refunded_amount >= original.amount:
                out[(o_day, "transactions")] -= 1
            out[(o_day, "points")] += points
        return dict(out)
    if not event.qualifying:
        return dict(out)
    if event.amount is not None:
        out[(day, "spend")] += event.amount
    if event.type == "transaction":
        out[(day, "transactions")] += 1
    for name, qty in event.quantities.items():
        out[(day, f"quantity:{name}")] += Decimal(str(qty))
    out[(day, "points")] += points
    return dict(out)


def _share(quantity: Decimal, refunded: Decimal, amount: Decimal) -> Decimal:
    return (quantity * refunded / amount).quantize(QUANTUM, ROUND_HALF_EVEN)


def add_contributions(*, tenant: Tenant, member: Member, values: Contributions) -> None:
    """Add to the daily rows with one atomic multi-row upsert (caller holds the member's lock)."""
    rows = [(day, metric, int(value * MetricDay.SCALE)) for (day, metric), value in values.items() if value]
    if not rows:
        return
    table = MetricDay._meta.db_table
    placeholders = ", ".join(["(%s, %s, %s, %s, %s)"] * len(rows))
    params: list[int | str | date] = []
    for day, metric, value in rows:
        params += [tenant.pk, member.pk, day, metric, value]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (tenant_id, member_id, day, metric, value) VALUES {placeholders} "  # noqa: S608
            f"ON CONFLICT (member_id, day, metric) DO UPDATE SET value = {table}.value + EXCLUDED.value",
            params,
        )


def daily_metrics(*, member: Member, since: date | None = None) -> DailyMetrics:
    """The member's daily metrics (from ``since``, or all) as the tier engine reads them."""
    rows = MetricDay.objects.filter(member=member)
    if since is not None:
        rows = rows.filter(day__gte=since)
    days: dict[date, dict[str, Decimal]] = defaultdict(dict)
    for day, metric, value in rows.values_list("day", "metric", "value"):
        days[day][metric] = Decimal(value) / MetricDay.SCALE
    return DailyMetrics(days)
