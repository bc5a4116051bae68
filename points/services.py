"""Writes of the points context: configuration of conversion rules, modifiers and the tenant's point
policy (validated, audited, bumping ``config_version`` through ``tenancy.services``).

And the ledger: points awarded by events (at the tiers held before the event, caps allocated in
``occurred_at`` order by ``points.caps``), reversed by refunds and rollbacks, granted at registration.
Retroactive recalculation is ``points.recalculation``.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import F, Sum

from audit.services import record_audit, snapshot
from config.errors import Conflict, Invalid
from config.tracing import current_request_id
from members.errors import MemberErased
from members.locks import lock_member
from members.models import Member, MemberEvent
from outbox.emit import emit
from points.buckets import award_buckets, bucket_keys, capped_bucket_names, cut_by_period
from points.caps import add_to_buckets, reallocate_after
from points.engine import calculate, point_event, refund_reversals
from points.models import PointBucket, PointConversionRule, PointModifier, PointPolicy, PointTransaction
from points.selectors import point_specs
from tenancy.models import Tenant
from tenancy.services import delete_config, save_config
from tiers.metrics import add_contributions, points_contributions
from tiers.models import MemberTierAssignment, Tier


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@transaction.atomic
def save_conversion_rule(*, tenant: Tenant, rule: PointConversionRule, actor: Any) -> PointConversionRule:
    return save_config(tenant=tenant, instance=rule, actor=actor)


@transaction.atomic
def delete_conversion_rule(*, tenant: Tenant, rule: PointConversionRule, actor: Any) -> None:
    holders = []
    if n := PointTransaction.objects.filter(rule=rule).count():
        holders.append(f"it awarded {_plural(n, 'point transaction')}")
    delete_config(tenant=tenant, instance=rule, actor=actor, holders=holders)


@transaction.atomic
def save_modifier(
    *,
    tenant: Tenant,
    modifier: PointModifier,
    actor: Any,
    rules: Iterable[PointConversionRule] | None = None,
    tiers: Iterable[Tier] | None = None,
) -> PointModifier:
    """Create or update a modifier; ``rules`` and ``tiers`` (its scope) replace the current ones when
    given and must belong to the tenant."""
    rules = list(rules) if rules is not None else None
    tiers = list(tiers) if tiers is not None else None
    errors = {}
    if rules is not None and any(r.tenant_id != tenant.pk for r in rules):
        errors["rules"] = ["Rules of another tenant."]
    if tiers is not None and any(t.tenant_id != tenant.pk for t in tiers):
        errors["tiers"] = ["Tiers of another tenant."]
    if errors:
        raise Invalid(errors=errors)
    if modifier.pk is not None:
        # pool_used is the awarding code's: lock the row (as awarding does) and keep its current value.
        modifier.pool_used = PointModifier.objects.select_for_update().get(pk=modifier.pk).pool_used

    def scope(saved: PointModifier) -> None:
        if rules is not None:
            saved.rules.set(rules)
        if tiers is not None:
            saved.tiers.set(tiers)

    return save_config(tenant=tenant, instance=modifier, actor=actor, related=scope)


@transaction.atomic
def delete_modifier(*, tenant: Tenant, modifier: PointModifier, actor: Any) -> None:
    holders = []
    if modifier.pool_used:
        holders.append(f"its campaign pool has given {modifier.pool_used:,} points")
    delete_config(tenant=tenant, instance=modifier, actor=actor, holders=holders)


def point_policy(*, tenant: Tenant) -> PointPolicy:
    """The tenant's policy (none stored yet: all defaults, no caps, no welcome points)."""
    return PointPolicy.objects.filter(tenant=tenant).first() or PointPolicy(tenant=tenant)


@transaction.atomic
def save_point_policy(*, tenant: Tenant, changes: dict[str, Any], actor: Any) -> PointPolicy:
    policy = point_policy(tenant=tenant)
    for field, value in changes.items():
        setattr(policy, field, value)
    policy.tenant = tenant
    policy.full_clean(validate_unique=False, validate_constraints=False)

    before = None if policy.pk is None else snapshot(PointPolicy.objects.get(pk=policy.pk))
    policy.save()
    record_audit(
        tenant=tenant, actor=actor, action="pointpolicy.updated", target=policy, before=before, after=snapshot(policy)
    )
    tenant.bump_config_version()
    return policy


# --- the ledger -----------------------------------------------------------------------------------
def _transaction_view(tx: PointTransaction, rule_code: str | None) -> dict[str, Any]:
    return {
        "id": tx.pk,
        "kind": tx.kind,
        "rule": rule_code,
        "base": _plain(tx.base),
        "multipliers": {"tier": str(tx.tier_multiplier)},
        "modifiers": tx.modifiers,
        "uncapped": tx.uncapped,
        "points": tx.points,
        "capped_by": tx.capped_by or None,
    }


def _plain(value: Decimal | int) -> int | str:
    value = Decimal(value)
    return int(value) if value == value.to_integral_value() else format(value.normalize(), "f")


def award_event_points(
    *, tenant: Tenant, member: Member, event: MemberEvent, assignments: list[MemberTierAssignment]
) -> tuple[int, list[dict[str, Any]]]:
    """Award an event's points (DOMAIN §4) at the tiers the member holds before the event: the engine's
    awards become ``earn`` transactions, cap buckets and campaign pools grow by what was given, and a
    ``points.applied`` message is written. Returns (total, transactions as the event result shows them).
    The caller holds the member's lock and has saved the event."""
    rules, mods, policy = point_specs(tenant=tenant)
    if not rules:
        return 0, []
    tz = ZoneInfo(tenant.timezone)
    keys = bucket_keys(event.occurred_at, tz)
    names = capped_bucket_names(rules, policy, keys)  # only what a cap reads (every bucket is still counted)
    stored = (
        dict(PointBucket.objects.filter(member=member, key__in=names.values()).values_list("key", "total"))
        if names
        else {}
    )
    used: dict[str, int] = {name: stored.get(key, 0) for name, key in names.items() if key in stored}
    pooled = [m.id for m in mods if m.campaign_total is not None]
    if pooled:  # pools are shared across members: lock them (in pk order) for this transaction
        for pk, pool_used in (
            PointModifier.objects.select_for_update()
            .filter(pk__in=pooled)
            .order_by("pk")
            .values_list("pk", "pool_used")
        ):
            used[f"pool:{pk}"] = pool_used
    awards = calculate(
        rules=rules,
        modifiers=mods,
        event=point_event(event),
        tier_multipliers={a.tier_type_id: a.tier.point_multiplier for a in assignments},
        held_tier_ids=frozenset(a.tier_id for a in assignments),
        policy=policy,
        used=used,
        tz=tz,
    )
    awards = tuple(a for a in awards if a.uncapped or a.points)
    if not awards:
        return 0, []
    if any(cut_by_period(a) for a in awards) and not any(a.pool_used for a in awards):
        awards = reallocate_after(
            tenant=tenant,
            member=member,
            event=event,
            awards=awards,
            rules=rules,
            policy=policy,
            pooled_codes=[m.code for m in mods if m.campaign_total is not None],
            tz=tz,
        )
    codes = {r.id: r.code for r in rules}
    transactions = PointTransaction.objects.bulk_create(
        PointTransaction(
            tenant=tenant,
            member=member,
            event=event,
            kind=PointTransaction.Kind.EARN,
            rule_id=a.rule_id,
            base=a.base,
            tier_multiplier=a.tier_multiplier,
            modifiers=[
                {"code": m.code, "multiplier": str(m.multiplier), "bonus_points": m.bonus_points} for m in a.modifiers
            ],
            uncapped=a.uncapped,
            demand=a.demand,
            points=a.points,
            capped_by=a.capped_by or "",
            occurred_at=event.occurred_at,
            correlation_id=current_request_id(),
        )
        for a in awards
    )
    increments: dict[str, int] = {}
    for award in awards:
        for key in award_buckets(award.rule_id, keys):
            increments[key] = increments.get(key, 0) + award.points
        for modifier_id, taken in award.pool_used.items():
            if taken:
                PointModifier.objects.filter(pk=modifier_id).update(pool_used=F("pool_used") + taken)
    add_to_buckets(tenant=tenant, member=member, values=increments)
    total = sum(a.points for a in awards)
    views = [_transaction_view(tx, codes.get(tx.rule_id or 0)) for tx in transactions]
    emit(
        tenant=tenant,
        type="points.applied",
        member_id=member.external_id,
        occurred_at=event.occurred_at,
        data={"event_id": event.event_id, "source": event.source, "total": total, "transactions": views},
    )
    return total, views


def reverse_refunded_points(
    *, tenant: Tenant, member: Member, refund: MemberEvent, original: MemberEvent
) -> tuple[int, list[dict[str, Any]]]:
    """A refund reverses the original's points pro rata (DOMAIN §4.5): each earn transaction ``t`` of the
    original is reversed down to ``floor(t.points × refunded / amount)`` in all, so partial refunds
    never reverse more than was awarded and a full refund reverses exactly everything. Buckets of the
    original's period shrink by what is reversed. ``original.refunded_amount`` already includes this
    refund. Returns (total reversed as a negative number, transactions)."""
    if not original.amount:
        return 0, []
    earned = list(PointTransaction.objects.filter(event=original, kind=PointTransaction.Kind.EARN))
    if not earned:
        return 0, []
    reversed_so_far = dict(
        PointTransaction.objects.filter(reversal_of__in=earned).values_list("reversal_of").annotate(n=Sum("points"))
    )
    tz = ZoneInfo(tenant.timezone)
    keys = bucket_keys(original.occurred_at, tz)
    by_pk = {tx.pk: tx for tx in earned}
    due = refund_reversals(
        [(tx.pk, tx.points) for tx in earned], reversed_so_far, original.refunded_amount, original.amount
    )
    reversals: list[PointTransaction] = []
    decrements: dict[str, int] = {}
    for pk, amount in due:
        tx = by_pk[pk]
        reversals.append(
            PointTransaction(
                tenant=tenant,
                member=member,
                event=refund,
                kind=PointTransaction.Kind.REVERSAL,
                rule_id=tx.rule_id,
                reversal_of=tx,
                points=-amount,
                occurred_at=refund.occurred_at,
                correlation_id=current_request_id(),
            )
        )
        for key in award_buckets(tx.rule_id, keys):
            decrements[key] = decrements.get(key, 0) - amount
    if not reversals:
        return 0, []
    PointTransaction.objects.bulk_create(reversals)
    add_to_buckets(tenant=tenant, member=member, values=decrements)
    total = sum(tx.points for tx in reversals)
    views = [_transaction_view(tx, None) for tx in reversals]
    emit(
        tenant=tenant,
        type="points.reverted",
        member_id=member.external_id,
        occurred_at=refund.occurred_at,
        data={"event_id": refund.event_id, "refund_of": original.event_id, "total": total, "transactions": views},
    )
    return total, views


def grant_welcome_points(*, tenant: Tenant, member: Member, actor: Any) -> PointTransaction | None:
    """The tenant's welcome points at registration (inside the registration's transaction)."""
    policy = PointPolicy.objects.filter(tenant=tenant).first()
    if policy is None or not policy.welcome_points:
        return None
    return grant_points(
        tenant=tenant,
        member=member,
        kind=PointTransaction.Kind.WELCOME,
        points=policy.welcome_points,
        occurred_at=member.registered_at,
    )


def grant_points(
    *, tenant: Tenant, member: Member, kind: str, points: int, occurred_at: datetime, note: dict[str, Any] | None = None
) -> PointTransaction:
    """Points not earned by an event (welcome, an event code): one transaction outside caps and tier
    metrics, and a ``points.applied`` message whose data carries ``kind`` and ``note``. Inside the
    caller's transaction."""
    tx = PointTransaction.objects.create(
        tenant=tenant,
        member=member,
        kind=kind,
        points=points,
        uncapped=points,
        occurred_at=occurred_at,
        correlation_id=current_request_id(),
    )
    emit(
        tenant=tenant,
        type="points.applied",
        member_id=member.external_id,
        occurred_at=occurred_at,
        data={"kind": kind, **(note or {}), "total": points, "transactions": [_transaction_view(tx, None)]},
    )
    return tx


class ReversalNotReversible(Conflict):
    code = "reversal_not_reversible"
    default_detail = "A reversal cannot be rolled back; record an adjustment instead."


class AlreadyReversed(Conflict):
    code = "already_reversed"
    default_detail = "This transaction is already fully reversed."


def reversible_points(tx: PointTransaction) -> int:
    """What a rollback of ``tx`` would reverse now: what is left of it after earlier reversals (0 for a
    reversal, a fully reversed transaction, or one of an erased member)."""
    if tx.kind == PointTransaction.Kind.REVERSAL or tx.member.status == Member.Status.ERASED:
        return 0
    return max(0, tx.points + (PointTransaction.objects.filter(reversal_of=tx).aggregate(n=Sum("points"))["n"] or 0))


@transaction.atomic
def rollback_point_transaction(*, tenant: Tenant, tx: PointTransaction, actor: Any, reason: str) -> PointTransaction:
    """Reverse one transaction exactly (DOMAIN §4.5): a ``reversal`` of what is left of it, its cap
    buckets and the points metric given back, audited, with a ``points.reverted`` message. A
    transaction that is already fully reversed, or is itself a reversal, is refused (409
    ``already_reversed``, ``reversal_not_reversible``), and so is any of an erased member's (409
    ``member_erased``)."""

    if not reason.strip():
        raise Invalid(errors={"reason": ["A reason is required."]})
    member = lock_member(tx.member)
    if member.status == Member.Status.ERASED:
        raise MemberErased()
    tx = PointTransaction.objects.select_related("event").get(pk=tx.pk, tenant=tenant)
    if tx.kind == PointTransaction.Kind.REVERSAL:
        raise ReversalNotReversible()
    left = tx.points + (PointTransaction.objects.filter(reversal_of=tx).aggregate(n=Sum("points"))["n"] or 0)
    if left <= 0:
        raise AlreadyReversed()
    reversal = PointTransaction.objects.create(
        tenant=tenant,
        member=member,
        event=tx.event,
        kind=PointTransaction.Kind.REVERSAL,
        rule=tx.rule,
        reversal_of=tx,
        points=-left,
        occurred_at=tx.occurred_at,
        correlation_id=current_request_id(),
    )
    if tx.kind == PointTransaction.Kind.EARN:
        keys = bucket_keys(tx.occurred_at, ZoneInfo(tenant.timezone))
        decrements = dict.fromkeys(award_buckets(tx.rule_id, keys), -left)
        add_to_buckets(tenant=tenant, member=member, values=decrements)
        if tx.event is not None and tx.event.counted:
            add_contributions(tenant=tenant, member=member, values=points_contributions(tx.event, tenant, -left))
    record_audit(
        tenant=tenant,
        actor=actor,
        action="points.rolled_back",
        target=tx,
        member_id=member.external_id,
        before={"points": left},
        after={"points": 0, "reversal": reversal.pk},
        reason=reason.strip(),
    )
    emit(
        tenant=tenant,
        type="points.reverted",
        member_id=member.external_id,
        occurred_at=tx.occurred_at,
        data={
            "rollback_of": tx.pk,
            "total": -left,
            "transactions": [_transaction_view(reversal, None)],
            "reason": reason.strip(),
        },
    )
    return reversal


@dataclass(frozen=True)
class EventAdjustment:
    """``difference`` points more (or fewer) for ``event`` under ``rule_id`` (None: not one rule's),
    which should have earned ``should`` in all."""

    event: MemberEvent
    rule_id: int | None
    difference: int
    should: int


def record_event_adjustments(
    *,
    tenant: Tenant,
    member: Member,
    adjustments: list[EventAdjustment],
    actor: Any,
    action: str,
    reason: str = "",
) -> list[PointTransaction]:
    """Write ``adjustment`` transactions for events whose points were wrong (a recalculation, a
    reconciliation repair; caller holds the member's lock): the cap buckets and the points metric follow,
    one audit entry (``action``) and one ``points.adjusted`` message for them all."""
    if not adjustments:
        return []
    tz = ZoneInfo(tenant.timezone)
    created = PointTransaction.objects.bulk_create(
        PointTransaction(
            tenant=tenant,
            member=member,
            event=a.event,
            kind=PointTransaction.Kind.ADJUSTMENT,
            rule_id=a.rule_id,
            points=a.difference,
            uncapped=a.should,
            occurred_at=a.event.occurred_at,
            correlation_id=current_request_id(),
        )
        for a in adjustments
    )
    buckets: dict[str, int] = defaultdict(int)
    metrics: dict[tuple[date, str], Decimal] = defaultdict(Decimal)
    for a in adjustments:
        for key in award_buckets(a.rule_id, bucket_keys(a.event.occurred_at, tz)):
            buckets[key] += a.difference
        for day_metric, value in points_contributions(a.event, tenant, a.difference).items():
            metrics[day_metric] += value
    add_to_buckets(tenant=tenant, member=member, values=dict(buckets))
    add_contributions(tenant=tenant, member=member, values=dict(metrics))
    total = sum(a.difference for a in adjustments)
    record_audit(
        tenant=tenant,
        actor=actor,
        action=action,
        target=member,
        member_id=member.external_id,
        after={"adjustments": len(created), "total": total},
        reason=reason,
    )
    emit(
        tenant=tenant,
        type="points.adjusted",
        member_id=member.external_id,
        data={
            "total": total,
            "transactions": [
                {"id": tx.pk, "event_id": a.event.event_id, "points": tx.points}
                for tx, a in zip(created, adjustments, strict=True)
            ],
        },
    )
    return created
