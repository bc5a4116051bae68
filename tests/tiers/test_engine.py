"""The pure tier engine against DOMAIN §3.3 to 3.4, one behaviour per test, exact instants.

Tenant time is Asia/Bangkok (UTC+7, no DST). The ladder: member (1, default) < silver (2) < gold (3)
< platinum (4); rules target silver (nights ≥ 10) and gold (nights ≥ 25) unless a test says otherwise.
"""

from dataclasses import replace
from dataclasses import replace as _replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from tiers.claims import grant_claim
from tiers.engine import enroll, evaluate, settle, with_manual_grant
from tiers.periods import period_of
from tiers.scope import compare
from tiers.types import (
    AssignmentSnapshot,
    Claim,
    CriterionSpec,
    DailyMetrics,
    MemberSnapshot,
    RuleSpec,
    TierDecision,
    TierSpec,
    TierTypeSpec,
)

TZ = ZoneInfo("Asia/Bangkok")
MEMBER, SILVER, GOLD, PLATINUM = (
    TierSpec(1, "member", 1, is_default=True),
    TierSpec(2, "silver", 2),
    TierSpec(3, "gold", 3),
    TierSpec(4, "platinum", 4),
)
SECOND = timedelta(seconds=1)


def t(text: str) -> datetime:
    """A tenant-local instant: '2026-03-01 10:00'."""
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


def nights(n: int, window_days: int | None = None) -> CriterionSpec:
    return CriterionSpec("quantity:nights", "gte", n, window_days)


def rule(rule_id: int, target: TierSpec | None, *criteria: CriterionSpec, **fields) -> RuleSpec:
    return RuleSpec(
        id=rule_id,
        code=f"r{rule_id}",
        direction="promotion",
        target_tier_id=target.id if target else None,
        criteria=criteria,
        **fields,
    )


SILVER_RULE = rule(10, SILVER, nights(10))
GOLD_RULE = rule(20, GOLD, nights(25))


def ladder(**fields) -> TierTypeSpec:
    base = {"id": 1, "code": "hotel", "tiers": (MEMBER, SILVER, GOLD, PLATINUM), "rules": (SILVER_RULE, GOLD_RULE)}
    return TierTypeSpec(**{**base, **fields})


def activity(*days: tuple[str, dict]) -> DailyMetrics:
    return DailyMetrics({datetime.fromisoformat(d).date(): {k: Decimal(v) for k, v in m.items()} for d, m in days})


def member(**fields) -> MemberSnapshot:
    return MemberSnapshot(registered_at=fields.pop("registered_at", t("2025-01-10 09:00")), **fields)


def held(tier: TierSpec = MEMBER, **fields) -> AssignmentSnapshot:
    base = {"since": t("2025-01-10 09:00"), "enrolled_at": t("2025-01-10 09:00")}
    return AssignmentSnapshot(tier_id=tier.id, **{**base, **fields})


def run(
    spec: TierTypeSpec,
    days: DailyMetrics,
    now: datetime,
    assignment: AssignmentSnapshot | None = None,
    who: MemberSnapshot | None = None,
):
    return evaluate(spec, who or member(), assignment or held(), days, now, TZ)


GOLD_MARCH = activity(("2026-03-01", {"quantity:nights": 30, "quantity:stays": 3}))


# --- qualification and validity -------------------------------------------------------------------
def test_promotion_to_the_highest_qualified_tier_names_its_rule():
    decision = run(ladder(), GOLD_MARCH, t("2026-03-02 08:00"))
    assert (decision.from_tier_id, decision.to_tier_id, decision.kind, decision.rule_id) == (1, 3, "promotion", 20)
    assert decision.changed


def test_ranks_may_be_skipped_and_default_tier_is_the_floor():
    decision = run(ladder(), activity(), t("2026-03-02 08:00"))
    assert (decision.to_tier_id, decision.kind, decision.entitled_tier_id) == (1, "none", 1)


@pytest.mark.parametrize(
    ("validity", "validity_days", "valid_until"),
    [
        ("end_of_period", None, t("2027-01-01 00:00")),
        ("end_of_next_period", None, t("2028-01-01 00:00")),
        ("fixed_days", 365, t("2026-03-02 00:00") + timedelta(days=365)),
        ("indefinite", None, None),
    ],
    ids=["end_of_period", "end_of_next_period", "fixed_days", "indefinite"],
)
def test_calendar_year_claim_ends(validity, validity_days, valid_until):
    decision = run(ladder(validity=validity, validity_days=validity_days), GOLD_MARCH, t("2026-03-02 08:00"))
    assert (decision.to_tier_id, decision.valid_until) == (3, valid_until)


@pytest.mark.parametrize(
    ("validity", "validity_days", "claim_end"),
    [
        ("end_of_period", None, t("2027-01-01 00:00")),
        ("end_of_next_period", None, t("2028-01-01 00:00")),
        ("fixed_days", 200, t("2026-03-02 00:00") + timedelta(days=200)),
    ],
    ids=["end_of_period", "end_of_next_period", "fixed_days"],
)
@pytest.mark.parametrize("step", ["to_qualified", "one_tier"])
def test_demotion_exactly_when_claim_plus_grace_runs_out(validity, validity_days, claim_end, step):
    spec = ladder(validity=validity, validity_days=validity_days, grace_days=90, demotion_step=step)
    boundary = claim_end + timedelta(days=90)
    at_gold = held(GOLD)
    assert run(spec, GOLD_MARCH, boundary, at_gold).to_tier_id == GOLD.id  # still counts at end + grace
    after = run(spec, GOLD_MARCH, boundary + SECOND, at_gold)
    # to_qualified drops to member; one_tier lands on silver (rank 2) with a claim to the period's end.
    assert (after.to_tier_id, after.kind) == ((MEMBER if step == "to_qualified" else SILVER).id, "demotion")
    if step == "one_tier":
        assert [c.source for c in after.granted] == ["soft_landing"]
        assert after.valid_until == period_of("calendar_year", boundary + SECOND, TZ, t("2025-01-10 09:00"))[1]


def test_one_tier_soft_landing_then_next_step_a_period_later():
    spec = ladder(validity="end_of_period", grace_days=0, demotion_step="one_tier")
    first = run(spec, GOLD_MARCH, t("2027-01-01 00:00") + SECOND, held(PLATINUM))
    assert first.to_tier_id == GOLD.id  # platinum -> gold (one rank), soft landing until end of 2027
    landing = first.granted
    assert landing == (Claim(GOLD.id, t("2028-01-01 00:00"), "soft_landing"),)
    mid = run(spec, GOLD_MARCH, t("2027-06-01 00:00"), held(GOLD, granted=landing))
    assert mid.to_tier_id == GOLD.id
    later = run(spec, GOLD_MARCH, t("2028-01-01 00:00") + SECOND, held(GOLD, granted=landing))
    assert later.to_tier_id == SILVER.id


def test_requalifying_extends_validity():
    days = activity(("2026-03-01", {"quantity:nights": 30}), ("2027-02-01", {"quantity:nights": 26}))
    decision = run(ladder(validity="end_of_period"), days, t("2027-02-02 00:00"), held(GOLD))
    assert (decision.to_tier_id, decision.kind, decision.valid_until) == (3, "none", t("2028-01-01 00:00"))


def test_lower_claim_catches_a_member_whose_higher_claim_ran_out():
    days = activity(("2026-03-01", {"quantity:nights": 30}), ("2027-05-01", {"quantity:nights": 12}))
    spec = ladder(validity="end_of_period", grace_days=0)
    decision = run(spec, days, t("2027-06-01 00:00"), held(GOLD))
    assert (decision.to_tier_id, decision.kind) == (SILVER.id, "demotion")


def test_calendar_month_periods():
    spec = ladder(qualification="calendar_month", validity="end_of_next_period", grace_days=0)
    days = activity(("2026-01-31", {"quantity:nights": 30}))
    assert run(spec, days, t("2026-02-01 10:00")).valid_until == t("2026-03-01 00:00")
    assert run(spec, days, t("2026-03-01 00:00"), held(GOLD)).to_tier_id == GOLD.id
    assert run(spec, days, t("2026-03-01 00:00") + SECOND, held(GOLD)).to_tier_id == MEMBER.id


def test_anniversary_periods_start_at_enrollment():
    spec = ladder(qualification="anniversary", validity="end_of_period", grace_days=0)
    enrolled = held(enrolled_at=t("2025-06-15 12:00"))
    days = activity(("2026-06-10", {"quantity:nights": 30}))  # in the year 2025-06-15 .. 2026-06-15
    decision = run(spec, days, t("2026-06-11 00:00"), enrolled)
    assert (decision.to_tier_id, decision.valid_until) == (GOLD.id, t("2026-06-15 00:00"))
    assert period_of("anniversary", t("2026-06-15 00:00"), TZ, t("2025-06-15 12:00")) == (
        t("2026-06-15 00:00"),
        t("2027-06-15 00:00"),
    )


def test_anniversary_on_29_february():
    start, end = period_of("anniversary", t("2027-03-01 00:00"), TZ, t("2024-02-29 08:00"))
    assert (start, end) == (t("2027-02-28 00:00"), t("2028-02-29 00:00"))


def test_lifetime_indefinite():
    spec = ladder(qualification="lifetime", validity="indefinite")
    days = activity(("2020-01-01", {"quantity:nights": 20}), ("2026-01-01", {"quantity:nights": 6}))
    decision = run(spec, days, t("2030-01-01 00:00"))
    assert (decision.to_tier_id, decision.valid_until) == (GOLD.id, None)


def test_rolling_while_qualified_to_the_second():
    spec = ladder(qualification="rolling", window_days=30, validity="while_qualified", grace_days=0, mode="dynamic")
    days = activity(("2026-03-01", {"quantity:nights": 30}))
    assert run(spec, days, t("2026-03-30 23:59")).to_tier_id == GOLD.id  # day 30 of the window
    last_seen = t("2026-03-31 00:00")  # end of 2026-03-30, the last day the window held the stay
    assert run(spec, days, last_seen, held(GOLD)).to_tier_id == GOLD.id
    assert run(spec, days, last_seen + SECOND, held(GOLD)).to_tier_id == MEMBER.id


def test_rolling_fixed_days_counts_from_the_last_qualifying_day():
    spec = ladder(qualification="rolling", window_days=30, validity="fixed_days", validity_days=60, grace_days=10)
    days = activity(("2026-03-01", {"quantity:nights": 30}))
    end = t("2026-03-31 00:00") + timedelta(days=60)
    assert run(spec, days, t("2026-04-15 00:00"), held(GOLD)).valid_until == end
    assert run(spec, days, end + timedelta(days=10), held(GOLD)).to_tier_id == GOLD.id
    assert run(spec, days, end + timedelta(days=10) + SECOND, held(GOLD)).to_tier_id == MEMBER.id


def test_criterion_window_overrides_the_tier_type_window():
    spec = ladder(rules=(rule(20, GOLD, nights(25, window_days=7)),), validity="end_of_period")
    spread = activity(("2026-03-01", {"quantity:nights": 15}), ("2026-03-20", {"quantity:nights": 15}))
    assert run(spec, spread, t("2026-03-21 00:00")).to_tier_id == MEMBER.id
    close = activity(("2026-03-14", {"quantity:nights": 15}), ("2026-03-20", {"quantity:nights": 15}))
    assert run(spec, close, t("2026-03-21 00:00")).to_tier_id == GOLD.id


def test_late_event_lands_in_the_year_it_occurred():
    """A stay of 31 December arriving in January earns a claim for last year (end_of_next_period:
    through the end of this year)."""
    days = activity(("2026-12-31", {"quantity:nights": 30}))
    decision = run(ladder(), days, t("2027-01-05 10:00"))
    assert (decision.to_tier_id, decision.valid_until) == (GOLD.id, t("2028-01-01 00:00"))


def test_year_boundary_in_tenant_time():
    """23:30 on 31 December in Bangkok is 16:30 UTC the same day: last year, by the tenant's calendar."""
    spec = ladder(validity="end_of_period", grace_days=0)
    days = activity(("2026-12-31", {"quantity:nights": 30}))
    assert run(spec, days, t("2027-01-01 00:00"), held(GOLD)).to_tier_id == GOLD.id
    assert run(spec, days, t("2027-01-01 00:00") + SECOND, held(GOLD)).to_tier_id == MEMBER.id


def test_refunded_qualification_leaves_no_claim():
    """A refund is booked on the day of the purchase it refunds (DOMAIN §4.5): the metric never met the
    rule, so the claim never stood and grace does not protect it."""
    days = activity(("2026-03-01", {"quantity:nights": 0}))
    decision = run(ladder(grace_days=90), days, t("2026-03-06 00:00"), held(GOLD))
    assert (decision.to_tier_id, decision.kind) == (MEMBER.id, "demotion")


# --- rules ------------------------------------------------------------------------------------------
def test_combinators():
    spend = CriterionSpec("spend", "gte", 5000)
    both = ladder(rules=(rule(20, GOLD, nights(25), spend, combinator="all"),))
    either = ladder(rules=(rule(20, GOLD, nights(25), spend, combinator="any"),))
    assert run(both, GOLD_MARCH, t("2026-03-02 00:00")).to_tier_id == MEMBER.id
    assert run(either, GOLD_MARCH, t("2026-03-02 00:00")).to_tier_id == GOLD.id


def test_ties_between_rules_go_to_priority_then_id():
    rules = (rule(31, GOLD, nights(5)), rule(30, GOLD, nights(5)), rule(32, GOLD, nights(5), priority=5))
    assert run(ladder(rules=rules), GOLD_MARCH, t("2026-03-02 00:00")).rule_id == 32
    assert run(ladder(rules=rules[:2]), GOLD_MARCH, t("2026-03-02 00:00")).rule_id == 30


@pytest.mark.parametrize("status", ["draft", "archived"])
def test_inactive_rules_earn_nothing(status):
    spec = ladder(rules=(replace(GOLD_RULE, status=status),))
    assert run(spec, GOLD_MARCH, t("2026-03-02 00:00")).to_tier_id == MEMBER.id


def test_rule_counts_only_activity_while_effective():
    late_rule = replace(GOLD_RULE, effective_from=t("2026-03-02 00:00"))
    days = activity(("2026-03-01", {"quantity:nights": 30}), ("2026-03-03", {"quantity:nights": 20}))
    assert run(ladder(rules=(late_rule,)), days, t("2026-03-04 00:00")).to_tier_id == MEMBER.id
    more = activity(("2026-03-01", {"quantity:nights": 30}), ("2026-03-03", {"quantity:nights": 26}))
    assert run(ladder(rules=(late_rule,)), more, t("2026-03-04 00:00")).to_tier_id == GOLD.id


@pytest.mark.parametrize(
    ("actual", "operator", "expected", "result"),
    [
        (Decimal(25), "gte", 25, True),
        (Decimal(25), "gt", 25, False),
        (Decimal(3), "lte", "3.0", True),
        (Decimal(3), "lt", 3, False),
        (Decimal(3), "eq", "3", True),
        (Decimal(3), "ne", 4, True),
        ("TH", "in", ["TH", "SG"], True),
        ("JP", "in", ["TH", "SG"], False),
        (None, "ne", "x", False),
        ("gold", "gte", 3, False),
        (True, "eq", True, True),
    ],
)
def test_compare(actual, operator, expected, result):
    assert compare(actual, operator, expected) is result


def test_attribute_and_tenure_criteria():
    vip = rule(
        20,
        GOLD,
        CriterionSpec("attribute:country", "in", ["TH"]),
        CriterionSpec("tenure_days", "gte", 365),
        combinator="all",
    )
    spec = ladder(rules=(vip,))
    thai = member(attributes={"country": "TH"}, registered_at=t("2025-03-01 09:00"))
    assert run(spec, activity(), t("2026-02-28 23:00"), who=thai).to_tier_id == MEMBER.id
    assert run(spec, activity(), t("2026-03-01 00:00"), who=thai).to_tier_id == GOLD.id
    assert run(spec, activity(), t("2026-03-01 00:00"), who=member()).to_tier_id == MEMBER.id


# --- what stops automatic movement ----------------------------------------------------------------
def test_immutable_current_tier_never_moves():
    spec = ladder(tiers=(MEMBER, replace(SILVER, immutable=True), GOLD, PLATINUM))
    assert run(spec, GOLD_MARCH, t("2026-03-02 00:00"), held(SILVER)).kind == "none"
    assert run(spec, activity(), t("2030-01-01 00:00"), held(SILVER)).to_tier_id == SILVER.id


def test_non_climbable_tier_is_not_entered_automatically():
    spec = ladder(tiers=(MEMBER, SILVER, replace(GOLD, climbable=False), PLATINUM))
    decision = run(spec, GOLD_MARCH, t("2026-03-02 00:00"))
    assert decision.to_tier_id == SILVER.id  # the highest climbable tier it qualifies for


def test_a_lock_stops_promotion_and_demotion_until_it_ends():
    lock = t("2026-04-01 00:00")
    assert run(ladder(), GOLD_MARCH, t("2026-03-02 00:00"), held(lock_until=lock)).kind == "none"
    assert run(ladder(), GOLD_MARCH, lock, held(lock_until=lock)).to_tier_id == GOLD.id
    assert run(ladder(), activity(), t("2026-03-02 00:00"), held(PLATINUM, lock_until=lock)).kind == "none"


def test_fixed_mode_moves_nobody():
    assert run(ladder(mode="fixed"), GOLD_MARCH, t("2026-03-02 00:00")).kind == "none"
    assert run(ladder(mode="fixed"), activity(), t("2026-03-02 00:00"), held(PLATINUM)).kind == "none"


def test_manual_expiry_returns_to_the_entitled_tier_even_when_locked():
    grant = Claim(PLATINUM.id, t("2026-05-01 00:00"), "manual", grace=False)
    vip = held(PLATINUM, expires_at=t("2026-05-01 00:00"), lock_until=t("2026-12-31 00:00"), granted=(grant,))
    assert run(ladder(), GOLD_MARCH, t("2026-04-30 23:59"), vip).to_tier_id == PLATINUM.id
    decision = run(ladder(), GOLD_MARCH, t("2026-05-01 00:00"), vip)
    assert (decision.to_tier_id, decision.kind) == (GOLD.id, "expiry")
    assert decision.granted == ()


def test_manual_grant_without_expiry_holds_like_a_qualification():
    spec = ladder(validity="end_of_period", grace_days=30)
    grant = grant_claim(spec, PLATINUM.id, t("2026-05-01 10:00"), TZ, None)
    assert grant == Claim(PLATINUM.id, t("2027-01-01 00:00"), "manual")
    vip = held(PLATINUM, granted=(grant,))
    assert run(spec, activity(), t("2027-01-31 00:00"), vip).to_tier_id == PLATINUM.id
    assert run(spec, activity(), t("2027-01-31 00:00") + SECOND, vip).to_tier_id == MEMBER.id


def test_time_bound_tier_ends_at_available_until():
    summer = TierSpec(5, "summer", 5, available_from=t("2026-06-01 00:00"), available_until=t("2026-09-01 00:00"))
    spec = ladder(tiers=(MEMBER, SILVER, GOLD, PLATINUM, summer))
    grant = Claim(summer.id, None, "manual")
    assert run(spec, GOLD_MARCH, t("2026-08-31 23:59"), held(summer, granted=(grant,))).to_tier_id == summer.id
    decision = run(spec, GOLD_MARCH, t("2026-09-01 00:00"), held(summer, granted=(grant,)))
    assert (decision.to_tier_id, decision.kind) == (GOLD.id, "time_bound_end")


def test_time_bound_tier_is_not_entered_outside_its_window():
    summer = TierSpec(5, "summer", 5, available_from=t("2026-06-01 00:00"), available_until=t("2026-09-01 00:00"))
    spec = ladder(tiers=(MEMBER, SILVER, GOLD, PLATINUM, summer), rules=(rule(50, summer, nights(5)),))
    assert run(spec, GOLD_MARCH, t("2026-05-31 23:59")).to_tier_id == MEMBER.id
    assert run(spec, GOLD_MARCH, t("2026-06-01 00:00")).to_tier_id == summer.id


# --- demotion rules (dynamic only) ----------------------------------------------------------------
INACTIVE = RuleSpec(90, "inactive", "demotion", None, (CriterionSpec("days_inactive", "gt", 180),))


@pytest.mark.parametrize("mode", ["dynamic", "hybrid"])
def test_demotion_rule_applies_in_dynamic_mode_only(mode):
    spec = ladder(mode=mode, rules=(SILVER_RULE, GOLD_RULE, INACTIVE), validity="end_of_next_period")
    quiet = member(last_event_at=t("2026-03-01 10:00"))
    decision = run(spec, GOLD_MARCH, t("2026-08-29 00:00"), held(GOLD), quiet)  # 181 days later
    if mode == "dynamic":
        assert (decision.to_tier_id, decision.kind, decision.rule_id) == (SILVER.id, "demotion", 90)
        assert decision.claims_void_before == t("2026-08-29 00:00")
    else:
        assert decision.kind == "none"


def test_demotion_rule_voids_earlier_claims_and_fires_once_per_situation():
    spec = ladder(mode="dynamic", rules=(SILVER_RULE, GOLD_RULE, INACTIVE))
    quiet = member(last_event_at=t("2026-03-01 10:00"))
    fired = run(spec, GOLD_MARCH, t("2026-08-29 00:00"), held(GOLD), quiet)
    assert fired.granted == (Claim(SILVER.id, t("2027-01-01 00:00"), "soft_landing"),)
    after = held(
        SILVER,
        claims_void_before=fired.claims_void_before,
        last_rule_demotion_at=t("2026-08-29 00:00"),
        granted=fired.granted,
    )
    next_day = run(spec, GOLD_MARCH, t("2026-08-30 00:00"), after, quiet)
    assert next_day.kind == "none"  # no re-promotion from voided claims, no second step down
    assert run(spec, GOLD_MARCH, t("2027-01-01 00:00") + SECOND, after, quiet).to_tier_id == MEMBER.id
    days = activity(("2026-03-01", {"quantity:nights": 30}), ("2026-09-10", {"quantity:nights": 26}))
    active = member(last_event_at=t("2026-09-10 10:00"))
    requalified = run(spec, days, t("2026-09-11 00:00"), after, active)
    assert requalified.to_tier_id == GOLD.id  # the activity since the void counts again
    little = activity(("2026-03-01", {"quantity:nights": 30}), ("2026-09-10", {"quantity:nights": 20}))
    assert run(spec, little, t("2026-09-11 00:00"), after, active).kind == "none"  # 20 < 25: voided 30 not counted


def test_demotion_rule_with_a_target_and_never_below_default():
    to_member = RuleSpec(91, "to-member", "demotion", MEMBER.id, (CriterionSpec("days_inactive", "gt", 10),))
    spec = ladder(mode="dynamic", rules=(to_member,))
    quiet = member(last_event_at=t("2026-03-01 10:00"))
    assert run(spec, activity(), t("2026-04-01 00:00"), held(PLATINUM), quiet).to_tier_id == MEMBER.id
    assert run(spec, activity(), t("2026-04-01 00:00"), held(MEMBER), quiet).kind == "none"


def test_settle_moves_the_tier_and_clears_lock_and_expiry_only_on_a_move():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    t1 = datetime(2026, 2, 1, tzinfo=UTC)
    start = _replace(enroll(1, t0), lock_until=t1, expires_at=t1)
    assert (start.tier_id, start.since, start.enrolled_at, start.source) == (1, t0, t0, "auto")
    kept = Claim(2, t1, "rule", rule_id=5)
    stay = TierDecision(1, 1, "none", "", None, None, 1, (), (kept,), None)
    same = settle(start, stay, t1, "auto")
    assert (same.tier_id, same.since, same.lock_until, same.granted) == (1, t0, t1, (kept,))
    move = TierDecision(1, 2, "demotion", "demotion rule x", 9, None, 2, (), (), t1)
    moved = settle(start, move, t1, "review")
    assert (moved.tier_id, moved.since, moved.source, moved.lock_until, moved.expires_at) == (
        2,
        t1,
        "review",
        None,
        None,
    )
    assert (moved.enrolled_at, moved.claims_void_before, moved.last_rule_demotion_at) == (t0, t1, t1)
    manual = Claim(3, None, "manual")
    assert with_manual_grant((Claim(2, t1, "manual"), kept), manual) == (kept, manual)
