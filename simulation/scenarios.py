"""Scenario writes (API.md "Wave 2 contract", DOMAIN §9): save, delete and publish a named set of draft
changes.

A scenario names draft promotion rules, conversion rules and modifiers to include, active ones to
exclude, and tier point multipliers to override. Saving records a ``fingerprint``: a hash of what every
object it names looks like then. Publishing makes the scenario live in one transaction (included drafts
active, excluded ones archived, multipliers written, one ``config_version`` bump, audited) and refuses
with 409 ``scenario_stale`` when any of those objects changed or disappeared since the save, so nobody
publishes a plan made against a program that no longer exists.
"""

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone

from audit.services import describe_actor, record_audit, snapshot
from config.errors import Conflict, DomainError, Invalid
from points.models import ConfigStatus, PointConversionRule, PointModifier
from points.services import save_conversion_rule, save_modifier
from simulation.models import Scenario, ScenarioTierOverride
from tenancy.models import Tenant
from tenancy.services import DuplicateCode, one_config_version
from tiers.models import PromotionRule, Tier
from tiers.services import save_promotion_rule, save_tier

DRAFT, ACTIVE, ARCHIVED = ConfigStatus.DRAFT, ConfigStatus.ACTIVE, ConfigStatus.ARCHIVED  # same values in tiers


class ScenarioStale(Conflict):
    code = "scenario_stale"
    default_detail = "Something the scenario names changed since it was saved; review it and save it again."


class ScenarioPublished(Conflict):
    code = "scenario_published"
    default_detail = "The scenario is already published."


@dataclass(frozen=True)
class Kind:
    """One kind of object a scenario includes or excludes: the API field, the model, the scenario's
    many-to-many fields, a word for messages, and the service that saves one."""

    field: str  # "promotion_rules"
    model: type[models.Model]
    include: str  # Scenario many-to-many field names
    exclude: str
    noun: str


KINDS = (
    Kind("promotion_rules", PromotionRule, "include_promotion_rules", "exclude_promotion_rules", "promotion rule"),
    Kind("point_rules", PointConversionRule, "include_point_rules", "exclude_point_rules", "conversion rule"),
    Kind("modifiers", PointModifier, "include_modifiers", "exclude_modifiers", "modifier"),
)
TIERS = "tier_overrides"


@dataclass(frozen=True)
class ScenarioChanges:
    """What a published scenario changed, by id."""

    activated: dict[str, list[int]]
    archived: dict[str, list[int]]
    tier_multipliers: dict[int, Decimal]


# --- fingerprints ---------------------------------------------------------------------------------
def state_hash(instance: models.Model) -> str:
    """A hash of the row's fields and many-to-many ids (``audit.services.snapshot``: the timestamps left
    out, so a save that changes nothing changes no hash)."""
    text = json.dumps(snapshot(instance), sort_keys=True, cls=DjangoJSONEncoder)
    return hashlib.sha256(text.encode()).hexdigest()


def named_ids(scenario: Scenario) -> dict[str, list[int]]:
    """Every object the scenario names, per fingerprint section (a kind's field, or ``tier_overrides``)."""
    out = {
        kind.field: sorted(
            {
                *getattr(scenario, kind.include).values_list("pk", flat=True),
                *getattr(scenario, kind.exclude).values_list("pk", flat=True),
            }
        )
        for kind in KINDS
    }
    out[TIERS] = sorted(scenario.tier_overrides.values_list("tier_id", flat=True))
    return out


def _rows(model: type[models.Model], tenant: Tenant, ids: Iterable[int], *, lock: bool) -> dict[int, Any]:
    rows = model._default_manager.filter(tenant=tenant, pk__in=list(ids)).order_by("pk")
    if lock:
        rows = rows.select_for_update(of=("self",))
    return {row.pk: row for row in rows}


def _fingerprint(rows: Mapping[str, Mapping[int, models.Model]]) -> dict[str, dict[str, str]]:
    return {section: {str(pk): state_hash(row) for pk, row in found.items()} for section, found in rows.items()}


def stale_objects(*, tenant: Tenant, scenario: Scenario) -> dict[str, list[str]]:
    """What changed since the scenario was saved, per section: ``{"promotion_rules": ["… 41 …"]}``
    (empty: nothing did). A read; :func:`publish_scenario` asks the same under its locks."""
    return _stale(scenario, _named_rows(tenant, scenario, lock=False))


def _named_rows(tenant: Tenant, scenario: Scenario, *, lock: bool) -> dict[str, dict[int, Any]]:
    """The rows the scenario names, locked in pk order per model when ``lock`` (one place, one order)."""
    ids = named_ids(scenario)
    rows = {kind.field: _rows(kind.model, tenant, ids[kind.field], lock=lock) for kind in KINDS}
    rows[TIERS] = _rows(Tier, tenant, ids[TIERS], lock=lock)
    return rows


def _stale(scenario: Scenario, rows: Mapping[str, Mapping[int, models.Model]]) -> dict[str, list[str]]:
    saved: dict[str, dict[str, str]] = scenario.fingerprint or {}
    now = _fingerprint(rows)
    nouns = {kind.field: kind.noun for kind in KINDS} | {TIERS: "tier"}
    out: dict[str, list[str]] = {}
    for section, noun in nouns.items():
        then, current = saved.get(section, {}), now.get(section, {})
        messages = []
        for pk in sorted({*then, *current}, key=int):
            if pk not in current:
                messages.append(f"The {noun} {pk} no longer exists.")
            elif pk not in then:
                messages.append(f"The {noun} {_label(rows[section][int(pk)])} was not in the saved scenario.")
            elif then[pk] != current[pk]:
                messages.append(f"The {noun} {_label(rows[section][int(pk)])} changed since the scenario was saved.")
        if messages:
            out[section] = messages
    return out


def _label(row: Any) -> str:
    return f"{row.code!r} ({row.pk})"


# --- save -----------------------------------------------------------------------------------------
def _ids(value: Any) -> list[int]:
    """Ids given as ints or as model instances (the admin), without repeats, in the order given."""
    return list(dict.fromkeys(v.pk if isinstance(v, models.Model) else int(v) for v in value or ()))


def _check_kind(
    tenant: Tenant, kind: Kind, chosen: Mapping[str, Any], errors: dict[str, list[str]]
) -> dict[str, list[Any]]:
    """The tenant's rows for a kind's ``include`` (drafts) and ``exclude`` (active) ids; problems go to
    ``errors`` under ``<field>.include`` / ``<field>.exclude``."""
    found: dict[str, list[Any]] = {}
    for side, wanted in (("include", DRAFT), ("exclude", ACTIVE)):
        ids = _ids(chosen.get(side))
        rows = _rows(kind.model, tenant, ids, lock=False)
        problems = []
        if missing := [pk for pk in ids if pk not in rows]:
            problems.append(f"No {kind.noun} with id {', '.join(map(str, missing))} in this tenant.")
        if wrong := [row for row in rows.values() if row.status != wanted]:
            what = "drafts can be included" if side == "include" else "active ones can be excluded"
            problems.extend(f"The {kind.noun} {_label(row)} is {row.status}: only {what}." for row in wrong)
        if problems:
            errors[f"{kind.field}.{side}"] = problems
        found[side] = [rows[pk] for pk in ids if pk in rows]
    return found


def _check_overrides(tenant: Tenant, overrides: Any, errors: dict[str, list[str]]) -> list[tuple[Tier, Decimal]]:
    """``[{"tier": id or Tier, "point_multiplier": Decimal}]`` → the tenant's tiers and multipliers."""
    given = [(_ids([o["tier"]])[0], Decimal(o["point_multiplier"])) for o in overrides or ()]
    tiers = _rows(Tier, tenant, [pk for pk, _ in given], lock=False)
    out: list[tuple[Tier, Decimal]] = []
    seen: set[int] = set()
    for index, (pk, multiplier) in enumerate(given):
        if pk not in tiers:
            errors[f"{TIERS}.{index}.tier"] = [f"No tier with id {pk} in this tenant."]
        elif pk in seen:
            errors[f"{TIERS}.{index}.tier"] = [f"The tier {_label(tiers[pk])} is overridden twice."]
        if multiplier < 0 or multiplier != multiplier.quantize(Decimal("0.01")) or multiplier >= 10_000:
            errors[f"{TIERS}.{index}.point_multiplier"] = ["A multiplier from 0 to 9999.99, with at most two decimals."]
        if pk in tiers and pk not in seen:
            out.append((tiers[pk], multiplier))
        seen.add(pk)
    return out


def scenario_state(scenario: Scenario) -> dict[str, Any]:
    """The scenario as its audit entries record it: fields, named ids and overrides."""
    state = {k: v for k, v in snapshot(scenario).items() if k != "fingerprint"}
    state[TIERS] = [
        {"tier": tier, "point_multiplier": str(multiplier)}
        for tier, multiplier in scenario.tier_overrides.order_by("tier_id").values_list("tier_id", "point_multiplier")
    ]
    return state


@transaction.atomic
def save_scenario(*, tenant: Tenant, scenario: Scenario, data: Mapping[str, Any], actor: Any) -> Scenario:
    """Create or replace a scenario from ``data``: ``code``, ``name``, ``promotion_rules`` /
    ``point_rules`` / ``modifiers`` as ``{"include": [ids], "exclude": [ids]}``, and ``tier_overrides``
    as ``[{"tier": id, "point_multiplier": Decimal}]`` (ids or model instances). Included objects must
    be the tenant's drafts, excluded ones its active ones, overridden tiers its own: anything else is a
    422 naming the field, and nothing is stored. A published scenario cannot change (409
    ``scenario_published``). Audited as ``scenario.created|updated``; live configuration is untouched,
    so ``config_version`` stays."""
    creating = scenario.pk is None
    before = None
    if not creating:
        stored = Scenario.objects.select_for_update().get(pk=scenario.pk, tenant=tenant)
        if stored.published_at is not None:
            raise ScenarioPublished("A published scenario cannot change; save a new one.")
        before = scenario_state(stored)
    errors: dict[str, list[str]] = {}
    chosen = {kind.field: _check_kind(tenant, kind, data.get(kind.field) or {}, errors) for kind in KINDS}
    overrides = _check_overrides(tenant, data.get(TIERS), errors)
    scenario.tenant = tenant
    scenario.code = data.get("code", scenario.code)
    scenario.name = data.get("name", scenario.name)
    if creating:
        scenario.created_by = describe_actor(actor)
    try:
        scenario.full_clean(validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        for field, messages in exc.message_dict.items():
            errors.setdefault(field, []).extend(messages)
    if errors:
        raise Invalid(errors=errors)
    if Scenario.objects.filter(tenant=tenant, code=scenario.code).exclude(pk=scenario.pk).exists():
        raise DuplicateCode(errors={"code": [f"Scenario {scenario.code!r} already exists."]})
    scenario.save()
    for kind in KINDS:
        getattr(scenario, kind.include).set(chosen[kind.field]["include"])
        getattr(scenario, kind.exclude).set(chosen[kind.field]["exclude"])
    scenario.tier_overrides.all().delete()
    ScenarioTierOverride.objects.bulk_create(
        ScenarioTierOverride(scenario=scenario, tier=tier, point_multiplier=m) for tier, m in overrides
    )
    scenario.fingerprint = _fingerprint(_named_rows(tenant, scenario, lock=False))
    scenario.save(update_fields=["fingerprint"])
    record_audit(
        tenant=tenant,
        actor=actor,
        action=f"scenario.{'created' if creating else 'updated'}",
        target=scenario,
        before=before,
        after=scenario_state(scenario),
    )
    return scenario


@transaction.atomic
def delete_scenario(*, tenant: Tenant, scenario: Scenario, actor: Any) -> None:
    """Delete a scenario (its overrides with it; runs of it keep their results). Audited."""
    stored = Scenario.objects.select_for_update().get(pk=scenario.pk, tenant=tenant)
    before, pk = scenario_state(stored), stored.pk
    stored.delete()
    record_audit(
        tenant=tenant,
        actor=actor,
        action="scenario.deleted",
        target_type=Scenario._meta.label_lower,
        target_id=str(pk),
        before=before,
    )


# --- publish --------------------------------------------------------------------------------------
def _save_status(kind: Kind, tenant: Tenant, row: Any, status: str, actor: Any) -> None:
    row.status = status
    with _refusal_names(kind.field, f"The {kind.noun} {_label(row)} cannot be made {status}"):
        if isinstance(row, PromotionRule):
            save_promotion_rule(tenant=tenant, rule=row, actor=actor)
        elif isinstance(row, PointConversionRule):
            save_conversion_rule(tenant=tenant, rule=row, actor=actor)
        else:
            save_modifier(tenant=tenant, modifier=row, actor=actor)


@contextmanager
def _refusal_names(section: str, what: str) -> Iterator[None]:
    """A service refusing one of the publish's saves is a 422 about the scenario's field (``section``),
    saying which object and why, not about the object's own fields (which the caller did not send)."""
    try:
        yield
    except (DomainError, ValidationError) as exc:
        if isinstance(exc, ValidationError):
            reasons = [f"{f}: {m}" if f != "__all__" else m for f, ms in exc.message_dict.items() for m in ms]
        else:
            reasons = [f"{f}: {m}" for f, ms in (exc.errors or {}).items() for m in ms] or [exc.detail]
        raise Invalid(
            "The scenario cannot be published as it is.",
            errors={section: [f"{what}: {'; '.join(r.rstrip('.') for r in reasons)}."]},
        ) from exc


@transaction.atomic
def publish_scenario(*, tenant: Tenant, scenario: Scenario, actor: Any) -> ScenarioChanges:
    """Make the scenario live in one transaction: included drafts become active, excluded rules and
    modifiers archived, tier multipliers written, each through its own service (validated, audited),
    with one ``config_version`` bump for all of it and a ``scenario.published`` audit entry.

    The scenario row and every row it names are locked (pk order, per model) before anything is read;
    409 ``scenario_published`` if it already is, 409 ``scenario_stale`` (``errors`` say what) if any
    named object changed or disappeared since the scenario was saved; 422 naming the scenario's field
    when a service refuses one of the saves (nothing is kept). Config saves emit no outbox message, so
    neither does this."""
    locked = Scenario.objects.select_for_update().get(pk=scenario.pk, tenant=tenant)
    if locked.published_at is not None:
        raise ScenarioPublished(f"The scenario {locked.code!r} was published at {locked.published_at.isoformat()}.")
    rows = _named_rows(tenant, locked, lock=True)
    if stale := _stale(locked, rows):
        raise ScenarioStale(errors=stale)
    activated: dict[str, list[int]] = {}
    archived: dict[str, list[int]] = {}
    multipliers: dict[int, Decimal] = {}
    with one_config_version():
        for kind in KINDS:
            found = rows[kind.field]
            include = sorted(getattr(locked, kind.include).values_list("pk", flat=True))
            exclude = sorted(getattr(locked, kind.exclude).values_list("pk", flat=True))
            for pk in include:
                _save_status(kind, tenant, found[pk], ACTIVE, actor)
            for pk in exclude:
                _save_status(kind, tenant, found[pk], ARCHIVED, actor)
            activated[kind.field], archived[kind.field] = include, exclude
        for override in locked.tier_overrides.order_by("tier_id"):
            tier = rows[TIERS][override.tier_id]
            multipliers[tier.pk] = override.point_multiplier
            if tier.point_multiplier != override.point_multiplier:
                tier.point_multiplier = override.point_multiplier
                with _refusal_names(TIERS, f"The tier {_label(tier)} cannot take ×{override.point_multiplier}"):
                    save_tier(tenant=tenant, tier=tier, actor=actor)
        before = scenario_state(locked)
        locked.published_at = timezone.now()
        locked.save(update_fields=["published_at", "updated_at"])
        record_audit(
            tenant=tenant,
            actor=actor,
            action="scenario.published",
            target=locked,
            before=before,
            after={
                **scenario_state(locked),
                "activated": activated,
                "archived": archived,
                "tier_multipliers": {str(pk): str(m) for pk, m in multipliers.items()},
            },
        )
    scenario.published_at = locked.published_at
    return ScenarioChanges(activated=activated, archived=archived, tier_multipliers=multipliers)
