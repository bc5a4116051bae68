"""Program backtest speed (issue 13): ``python -m bench backtest --members N [--events-per-member 20]``.

Loads a tenant with N members and about N × 20 events over the past year straight into PostgreSQL with
COPY (not through the HTTP pipeline: the backtest reads stored, processed events), a two-rule hotel
program and a one-rule scenario (Gold at 15 nights instead of 25), then times the backtest run through
real Celery workers on the ``maintenance`` queue: once with 1 worker process, once with 2. Reports
wall time, events/s, the workers' peak RSS, and a pgbench reference measured in the same run.

Needs ``DATABASE_URL`` (PostgreSQL, migrated) and ``REDIS_URL``; the data stays (``--reuse`` skips
loading when the tenant already has the members).
"""

import argparse
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import ROOT, bench_keys, manage
from bench.ingest import _pgbench


def _django(env: dict[str, str]) -> None:
    os.environ.update(env)
    import django

    django.setup()


def _program(tenant):
    from points.models import PointConversionRule, PointPolicy
    from tiers.models import PromotionRule, Tier, TierType

    hotel = TierType.objects.create(
        tenant=tenant,
        code="hotel",
        name="Hotel",
        mode="hybrid",
        qualification="calendar_year",
        validity="end_of_next_period",
        grace_days=90,
    )
    tiers = {
        code: Tier.objects.create(
            tenant=tenant,
            tier_type=hotel,
            code=code,
            name=code.title(),
            rank=rank,
            is_default=rank == 1,
            point_multiplier=mult,
        )
        for code, rank, mult in (("member", 1, "1.00"), ("silver", 2, "1.25"), ("gold", 3, "1.50"))
    }
    nights = [{"metric": "quantity:nights", "operator": "gte", "value": 25, "window_days": None}]
    PromotionRule.objects.create(
        tenant=tenant,
        tier_type=hotel,
        target_tier=tiers["gold"],
        code="gold-25",
        criteria=nights,
        combinator="all",
        status="active",
    )
    spend = [{"metric": "spend", "operator": "gte", "value": 4000, "window_days": None}]
    PromotionRule.objects.create(
        tenant=tenant,
        tier_type=hotel,
        target_tier=tiers["silver"],
        code="silver-4000",
        criteria=spend,
        combinator="all",
        status="active",
    )
    easy = PromotionRule.objects.create(
        tenant=tenant,
        tier_type=hotel,
        target_tier=tiers["gold"],
        code="gold-15",
        combinator="all",
        status="draft",
        criteria=[{**nights[0], "value": 15}],
    )
    PointConversionRule.objects.create(
        tenant=tenant,
        code="spend",
        base="per_amount",
        unit_amount=10,
        points_per_unit=1,
        tier_type=hotel,
        cap_per_day=500,
    )
    PointPolicy.objects.create(tenant=tenant, point_value="0.0050")
    tenant.bump_config_version()
    return easy


def _load(slug: str, members: int, per_member: int) -> tuple[int, int]:
    """Tenant, program, scenario, members and events (COPY); → (tenant id, scenario id)."""
    from django.db import connection, transaction

    from members.models import Member, MemberEvent
    from simulation.models import Scenario
    from simulation.scenarios import save_scenario
    from tenancy.models import Tenant

    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is not None and MemberEvent.objects.filter(tenant=tenant).exists():
        return tenant.pk, Scenario.objects.get(tenant=tenant, code="gold-15").pk
    with transaction.atomic():
        tenant = Tenant.objects.create(slug=slug, name=f"Backtest {members}", timezone="Asia/Bangkok")
        easy = _program(tenant)
        none = {"include": [], "exclude": []}
        scenario = save_scenario(
            tenant=tenant,
            scenario=Scenario(),
            actor="bench",
            data={
                "code": "gold-15",
                "name": "Gold at 15 nights",
                "promotion_rules": {"include": [easy.pk], "exclude": []},
                "point_rules": none,
                "modifiers": none,
                "tier_overrides": [],
            },
        )
    rng = random.Random(13)
    now = datetime.now(UTC).replace(microsecond=0)
    year_ago = now - timedelta(days=365)
    with connection.cursor() as cursor:
        buffer = io.StringIO()
        for n in range(members):
            buffer.write(
                f"{tenant.pk}\tbt-{n:07d}\t\t\t\tactive\t{{}}\t{year_ago.isoformat()}\tf\t\\N\t{now.isoformat()}\n"
            )
        buffer.seek(0)
        with cursor.cursor.copy(
            f"COPY {Member._meta.db_table} (tenant_id, external_id, name, email, mobile, status, attributes,"
            " registered_at, iam_linked, last_event_at, updated_at) FROM STDIN"
        ) as copy:
            copy.write(buffer.read())
        ids = list(Member.objects.filter(tenant=tenant).order_by("pk").values_list("pk", flat=True))
        columns = (
            "tenant_id, member_id, source, event_id, type, occurred_at, received_at, amount, currency, product,"
            " partner, channel, campaign_code, quantities, attributes, qualifying, refunded_amount, body_hash, status,"
            " counted, response_status, attempts, last_error, processed_at, correlation_id"
        )
        with cursor.cursor.copy(f"COPY {MemberEvent._meta.db_table} ({columns}) FROM STDIN") as copy:
            for member_id in ids:
                lines = []
                for k in range(rng.randint(per_member // 2, per_member * 3 // 2)):
                    at = year_ago + timedelta(seconds=rng.randint(0, 365 * 86400 - 120))
                    stamp = at.isoformat()
                    done = (at + timedelta(seconds=30)).isoformat()
                    nights = rng.randint(1, 4)
                    quantities = json.dumps({"nights": nights, "stays": 1})
                    amount = f"{nights * rng.randint(80, 300)}.00"
                    fields = [tenant.pk, member_id, "pms", f"{member_id}-{k}", "transaction", stamp, done, amount]
                    fields += ["USD", "", "", "", "", quantities, "{}", "t", "0", "-", "processed", "t", 201, 0, ""]
                    fields += [done, ""]
                    lines.append("\t".join(str(f) for f in fields) + "\n")
                copy.write("".join(lines))
    return tenant.pk, scenario.pk


def _workers(env: dict[str, str], count: int, log: Path) -> list[subprocess.Popen]:
    out = log.open("ab")
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                "maintenance",
                "-c",
                "1",
                "-l",
                "WARNING",
                "-n",
                f"backtest{i}-{os.getpid()}@%h",
                "--without-gossip",
                "--without-mingle",
                "--prefetch-multiplier",
                "1",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        for i in range(count)
    ]


def _peak_rss_mib(procs: list[subprocess.Popen]) -> float:
    """The largest peak resident set (VmHWM) among the worker processes and their pool children."""
    peak = 0
    for proc in procs:
        pids = [proc.pid]
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        if children.exists():
            pids += [int(p) for p in children.read_text().split()]
        for pid in pids:
            status = Path(f"/proc/{pid}/status")
            if status.exists():
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
    return peak / 1024


def _run(env: dict[str, str], tenant_id: int, scenario_id: int, workers: int, chunk: int) -> dict:
    from django.utils import timezone

    from simulation.models import SimulationRun
    from simulation.runs import start_run
    from tenancy.models import Tenant

    log = Path(tempfile.mkdtemp(prefix="bench-backtest-")) / "workers.log"
    procs = _workers({**env, "SIMULATION_CHUNK_SIZE": str(chunk)}, workers, log)
    time.sleep(6)
    try:
        tenant = Tenant.objects.get(pk=tenant_id)
        today = timezone.localdate()
        started = time.monotonic()
        run = start_run(
            tenant=tenant,
            scenario_id=scenario_id,
            starts=today - timedelta(days=366),
            ends=today,
            sample=None,
            tier_type_id=None,
            actor="bench",
        )
        while True:
            run.refresh_from_db()
            if run.status in SimulationRun.FINISHED:
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        rss = _peak_rss_mib(procs)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
    if run.status != SimulationRun.Status.DONE:
        raise SystemExit(f"backtest {run.status}: {run.error} (worker log: {log})")
    return {
        "workers": workers,
        "seconds": round(elapsed, 1),
        "members": run.members_done,
        "events": run.events,
        "events_per_s": round(run.events / elapsed),
        "peak_rss_mib": round(rss),
        "chunks": run.chunks_total,
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench backtest")
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--events-per-member", type=int, default=20)
    parser.add_argument("--workers", default="1,2", help="worker counts to time, comma-separated")
    parser.add_argument("--chunk", type=int, default=2000, help="members per chunk task")
    parser.add_argument("--no-pgbench", action="store_true")
    args = parser.parse_args(argv)
    env, _ = bench_keys()
    if not env.get("DATABASE_URL", "").startswith("postgres"):
        raise SystemExit("python -m bench backtest needs DATABASE_URL pointing at PostgreSQL and REDIS_URL")
    manage(env, "migrate", "--noinput", capture=True)
    _django(env)
    started = time.monotonic()
    tenant_id, scenario_id = _load(f"backtest-{args.members}", args.members, args.events_per_member)
    print(f"load: {time.monotonic() - started:.1f} s", flush=True)
    for workers in [int(w) for w in args.workers.split(",")]:
        print(json.dumps(_run(env, tenant_id, scenario_id, workers, args.chunk)), flush=True)
    if not args.no_pgbench:
        print(f"pgbench reference: {_pgbench(env['DATABASE_URL'])}", flush=True)
