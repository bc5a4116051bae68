"""Starting and reading program backtests (``simulation.backtest`` does the work, ``simulation.tasks``
runs it on workers)."""

from datetime import date
from typing import Any

from django.db import transaction

from audit.services import describe_actor, record_audit
from config.errors import Invalid
from simulation.models import Scenario, SimulationRun
from simulation.tasks import plan_run
from tenancy.models import Tenant
from tiers.models import TierType

MAX_DAYS = 3660


@transaction.atomic
def start_run(
    *,
    tenant: Tenant,
    scenario_id: int | None,
    starts: date,
    ends: date,
    sample: int | None,
    tier_type_id: int | None,
    actor: Any,
) -> SimulationRun:
    """Queue a backtest of ``scenario`` (None: the live configuration against itself) over the events
    processed from ``starts`` to ``ends`` (tenant days, inclusive). Unknown or another tenant's scenario
    or tier type, or ``starts`` after ``ends``, is a 422 naming the field; nothing is stored."""
    errors: dict[str, list[str]] = {}
    scenario = None
    if scenario_id is not None:
        scenario = Scenario.objects.filter(tenant=tenant, pk=scenario_id).first()
        if scenario is None:
            errors["scenario"] = ["No scenario of this program has this id."]
    tier_type = None
    if tier_type_id is not None:
        tier_type = TierType.objects.filter(tenant=tenant, pk=tier_type_id).first()
        if tier_type is None:
            errors["tier_type"] = ["No tier type of this program has this id."]
    if starts > ends:
        errors["from"] = ["Must not be after 'to'."]
    elif (ends - starts).days > MAX_DAYS:
        errors["to"] = [f"A simulation covers at most {MAX_DAYS} days."]
    if errors:
        raise Invalid(errors=errors)
    run = SimulationRun.objects.create(
        tenant=tenant,
        scenario=scenario,
        starts=starts,
        ends=ends,
        sample=sample,
        tier_type=tier_type,
        requested_by=describe_actor(actor),
    )
    record_audit(
        tenant=tenant,
        actor=actor,
        action="simulation.run_started",
        target=run,
        after={
            "scenario": scenario.code if scenario else None,
            "from": starts.isoformat(),
            "to": ends.isoformat(),
            "sample": sample,
            "tier_type": tier_type.code if tier_type else None,
        },
    )
    transaction.on_commit(lambda: plan_run.delay(run.pk))
    return run
