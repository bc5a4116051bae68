"""Worked examples of DOMAIN §4, one per rule, with the expected integers written out by hand."""

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from points.engine import allocate, base_points, calculate, reallocate, refund_reversals, rule_matches
from points.types import Award, CapShare, ConversionRuleSpec, LaterEarn, ModifierSpec, PointEvent, Policy

TZ = ZoneInfo("Asia/Bangkok")
D = Decimal


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def ev(amount: str | None = "250.75", **fields) -> PointEvent:
    base = {
        "type": "transaction",
        "occurred_at": at("2026-03-04T10:00:00+07:00"),  # a Wednesday
        "amount": D(amount) if amount is not None else None,
    }
    return PointEvent(**{**base, **fields})


def rule(rule_id: int = 1, **fields) -> ConversionRuleSpec:
    base = {"id": rule_id, "code": f"r{rule_id}", "base": "per_amount", "unit_amount": D("1.00"), "points_per_unit": 10}
    return ConversionRuleSpec(**{**base, **fields})


def mod(mod_id: int, **fields) -> ModifierSpec:
    return ModifierSpec(**{"id": mod_id, "code": f"m{mod_id}", **fields})


NO_CAPS = Policy()


def points(rules, event=None, modifiers=(), tiers=None, held=frozenset(), policy=NO_CAPS, used=None):
    return calculate(
        rules=rules,
        modifiers=modifiers,
        event=event or ev(),
        tier_multipliers=tiers or {},
        held_tier_ids=held,
        policy=policy,
        used=used or {},
        tz=TZ,
    )


# --- bases ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "event", "expected"),
    [
        (rule(), ev("250.75"), 2500),  # floor(250.75 / 1.00) × 10
        (rule(unit_amount=D("25.00"), points_per_unit=1), ev("99.99"), 3),  # 1 point per 25.00
        (rule(unit_amount=D("25.00"), points_per_unit=1), ev("100.00"), 4),
        (rule(base="per_event", points_per_unit=500), ev(None, type="mission"), 500),
        (rule(base="per_quantity", quantity_name="nights", points_per_unit=100), ev(quantities={"nights": D(3)}), 300),
        (rule(base="per_quantity", quantity_name="nights", points_per_unit=100), ev(quantities={}), 0),
        (rule(), ev(None), 0),  # per_amount without an amount earns nothing
    ],
    ids=["per-amount", "per-25", "per-25-exact", "per-event", "per-quantity", "no-quantity", "no-amount"],
)
def test_bases(spec, event, expected):
    assert sum(a.points for a in points([spec], event)) == expected


def test_fractional_quantity_rounds_once_at_the_end():
    spec = rule(base="per_quantity", quantity_name="nights", points_per_unit=100, rounding="down")
    assert base_points(spec, ev(quantities={"nights": D("2.5")})) == D(250)
    assert points([spec], ev(quantities={"nights": D("0.333")}))[0].points == 33


def test_tier_multiplier_of_the_rules_tier_type():
    (award,) = points([rule(tier_type_id=7)], tiers={7: D("1.80"), 8: D("3.00")})
    assert (award.base, award.tier_multiplier, award.uncapped, award.points) == (D(2500), D("1.80"), 4500, 4500)
    (plain,) = points([rule()], tiers={7: D("1.80")})  # no tier type named: no multiplier
    assert plain.points == 2500


@pytest.mark.parametrize(
    ("multiplier", "rounding", "expected"),
    [
        ("1.5", "down", 1),
        ("1.5", "half_up", 2),
        ("1.5", "up", 2),
        ("1.25", "half_up", 1),
        ("1.25", "up", 2),
        ("1.99", "down", 1),
    ],
)
def test_rounding_modes(multiplier, rounding, expected):
    spec = rule(base="per_event", points_per_unit=1, tier_type_id=1, rounding=rounding)
    assert points([spec], tiers={1: D(multiplier)})[0].points == expected


# --- matching and groups --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "event", "matches"),
    [
        (rule(event_types=("transaction",)), ev(type="mission"), False),
        (rule(event_types=()), ev(type="mission"), True),
        (rule(product="spa"), ev(product="hotel"), False),
        (rule(partner="bank-co"), ev(partner="bank-co"), True),
        (rule(source="pos"), ev(source="web"), False),
        (rule(channel="app"), ev(channel="app"), True),
        (rule(min_amount=D("100.00")), ev("99.99"), False),
        (rule(min_amount=D("100.00")), ev("100.00"), True),
        (rule(min_amount=D("1.00")), ev(None), False),
        (rule(status="draft"), ev(), False),
        (rule(effective_from=at("2026-03-05T00:00:00+07:00")), ev(), False),
        (rule(effective_until=at("2026-03-04T10:00:00+07:00")), ev(), False),
    ],
)
def test_rule_matching(spec, event, matches):
    assert rule_matches(spec, event) is matches


def test_one_rule_per_group_groups_add_up():
    rules = [
        rule(1, group="base", priority=10),  # 10 per unit
        rule(2, group="base", priority=5, points_per_unit=20),  # loses to rule 1 in its group
        rule(3, group="partner_bonus", base="per_event", points_per_unit=100),
    ]
    awards = points(rules)
    assert [(a.rule_code, a.points) for a in awards] == [("r1", 2500), ("r3", 100)]


def test_equal_priority_in_a_group_goes_to_the_lower_id():
    awards = points([rule(5, points_per_unit=20), rule(4)])
    assert [(a.rule_code, a.points) for a in awards] == [("r4", 2500)]


# --- modifiers ------------------------------------------------------------------------------------
def test_non_exclusive_modifiers_multiply():
    (award,) = points([rule()], ev("100.00"), [mod(1, multiplier=D(2)), mod(2, multiplier=D("1.5"))])
    assert award.points == 3000  # 1,000 × 2 × 1.5
    assert [(m.code, m.multiplier) for m in award.modifiers] == [("m1", D(2)), ("m2", D("1.5"))]


def test_the_largest_exclusive_modifier_applies_alone():
    modifiers = [
        mod(1, multiplier=D(2), exclusive=True),
        mod(2, multiplier=D(3), exclusive=True),
        mod(3, multiplier=D("1.5")),
    ]
    (award,) = points([rule()], ev("100.00"), modifiers)
    assert (award.points, [m.code for m in award.modifiers]) == (3000, ["m2"])


def test_bonus_points_once_per_event_after_rounding():
    rules = [
        rule(1, base="per_event", points_per_unit=5, tier_type_id=1),
        rule(2, group="extra", base="per_event", points_per_unit=1),
    ]
    awards = points(rules, modifiers=[mod(1, bonus_points=50)], tiers={1: D("1.5")})
    # round_down(5 × 1.5) + 50 = 57; the second award gets no second bonus.
    assert [(a.rule_code, a.points) for a in awards] == [("r1", 57), ("r2", 1)]


def test_modifier_scope():
    weekend = mod(1, multiplier=D(2), days_of_week=(5, 6))
    assert points([rule()], ev("100.00"), [weekend])[0].points == 1000  # Wednesday
    saturday_in_bangkok = ev("100.00", occurred_at=at("2026-03-06T18:00:00+00:00"))  # Sat 01:00 +07
    assert points([rule()], saturday_in_bangkok, [weekend])[0].points == 2000
    vip = mod(2, multiplier=D(2), tier_ids=(30, 31))
    assert points([rule()], ev("100.00"), [vip], held=frozenset({31}))[0].points == 2000
    assert points([rule()], ev("100.00"), [vip], held=frozenset({29}))[0].points == 1000
    campaign = mod(3, multiplier=D(2), campaign_code="SONGKRAN")
    assert points([rule()], ev("100.00", campaign_code="SONGKRAN"), [campaign])[0].points == 2000
    only_rule_9 = mod(4, multiplier=D(2), rule_ids=(9,))
    assert points([rule()], ev("100.00"), [only_rule_9])[0].points == 1000
    window = mod(5, multiplier=D(2), starts_at=at("2026-03-05T00:00:00+07:00"))
    assert points([rule()], ev("100.00"), [window])[0].points == 1000


# --- caps -----------------------------------------------------------------------------------------
def test_cap_per_event_records_the_uncapped_value():
    (award,) = points([rule(cap_per_event=75_000, tier_type_id=1)], ev("5000.00"), tiers={1: D("1.8")})
    assert (award.uncapped, award.points, award.capped_by) == (90_000, 75_000, "rule:event")


@pytest.mark.parametrize("period", ["day", "week", "month"])
def test_rule_period_caps_leave_only_what_remains(period):
    spec = rule(**{f"cap_per_{period}": 1000}, base="per_event", points_per_unit=300)
    (award,) = points([spec], used={f"rule:1:{period}": 800})
    assert (award.points, award.capped_by) == (200, f"rule:{period}")
    (full,) = points([spec], used={f"rule:1:{period}": 1000})
    assert (full.points, full.capped_by) == (0, f"rule:{period}")


@pytest.mark.parametrize("period", ["day", "week", "month"])
def test_global_caps_span_the_events_awards(period):
    rules = [rule(1, base="per_event", points_per_unit=300), rule(2, group="b", base="per_event", points_per_unit=300)]
    awards = points(rules, policy=Policy(**{f"cap_per_{period}": 500}))
    assert [(a.points, a.capped_by) for a in awards] == [(300, None), (200, f"global:{period}")]


def test_global_cap_per_event():
    rules = [rule(1, base="per_event", points_per_unit=300), rule(2, group="b", base="per_event", points_per_unit=300)]
    awards = points(rules, policy=Policy(cap_per_event=400))
    assert [(a.points, a.capped_by) for a in awards] == [(300, None), (100, "global:event")]


def test_the_smallest_allowance_is_the_one_named():
    spec = rule(base="per_event", points_per_unit=1000, cap_per_event=900, cap_per_day=950)
    (award,) = points([spec], used={"rule:1:day": 200})
    assert (award.points, award.capped_by) == (750, "rule:day")


def test_demand_is_the_award_before_period_caps():
    spec = rule(base="per_event", points_per_unit=1000, cap_per_event=900, cap_per_day=950)
    (award,) = points([spec], used={"rule:1:day": 200})
    assert (award.demand, award.points) == (900, 750)
    (free,) = points([spec])
    assert (free.demand, free.points, free.capped_by) == (900, 900, "rule:event")


def test_allocate_gives_each_share_what_its_buckets_have_left_in_order():
    """Day cap 1,000 in a week cap 1,500: Monday's 1,000 first, Tuesday gets the week's last 500,
    Wednesday nothing; the uncapped month bucket only counts."""

    def share(key, day, demand):
        return CapShare(key, demand, (("rule:day", f"d{day}"), ("rule:week", "w"), ("rule:month", "m")))

    used = {"w": 0}
    result = allocate(
        [share("mon", 1, 1000), share("tue", 2, 1000), share("wed", 3, 300)],
        {"d1": 1000, "d2": 1000, "d3": 1000, "w": 1500},
        used,
    )
    assert result == {"mon": (1000, None), "tue": (500, "rule:week"), "wed": (0, "rule:week")}
    assert used == {"w": 0}  # pure: the caller's totals are not touched


def test_campaign_pool_limits_only_the_campaigns_uplift():
    double = mod(1, multiplier=D(2), bonus_points=10, campaign_total=1000)
    (award,) = points([rule()], ev("10.00"), [double], used={"pool:1": 950})
    # Without the campaign: 100. With it: 200 + 10 = 210; the pool has 50 left: 100 + 50.
    assert (award.uncapped, award.points, award.capped_by, award.pool_used) == (210, 150, "pool:m1", {1: 50})
    (empty,) = points([rule()], ev("10.00"), [double], used={"pool:1": 1000})
    assert (empty.points, empty.pool_used) == (100, {1: 0})
    (plenty,) = points([rule()], ev("10.00"), [double], used={"pool:1": 0})
    assert (plenty.points, plenty.capped_by, plenty.pool_used) == (210, None, {1: 110})


def test_reallocate_gives_a_late_event_its_share_and_cuts_what_came_after():
    """Day cap 1,000: Tuesday's 800 was stored whole; Monday's 700 arrives late in the same week with a
    week cap of 1,000: Monday takes 700 first, Tuesday drops to 300; nothing else changes."""
    capped = rule(cap_per_week=1000)
    monday = datetime(2026, 3, 2, 12, tzinfo=TZ)
    tuesday = datetime(2026, 3, 3, 12, tzinfo=TZ)
    late = Award(
        rule_id=1,
        rule_code="r1",
        base=D(700),
        tier_multiplier=D(1),
        modifiers=(),
        uncapped=700,
        points=200,
        capped_by="rule:week",
        demand=700,
    )
    week = "rule:1:week:2026-W10"
    out = reallocate(
        awards=[late],
        occurred_at=monday,
        later=[LaterEarn(key="tue", rule_id=1, occurred_at=tuesday, demand=800, current=800)],
        totals={week: 800, "global:week:2026-W10": 800},
        rules=[capped],
        policy=Policy(),
        tz=TZ,
    )
    assert [(a.points, a.capped_by) for a in out.awards] == [(700, None)]
    assert dict(out.changed) == {"tue": (300, "rule:week")}
    assert out.reach == datetime(2026, 4, 6, tzinfo=TZ)  # the end of the ISO week holding 31 March


def test_refund_reversals_are_pro_rata_and_never_exceed_the_award():
    assert refund_reversals([("a", 101), ("b", 10)], {}, D("50"), D("100")) == [("a", 50), ("b", 5)]
    # a second half refund reverses the rest exactly, counting what was already reversed
    assert refund_reversals([("a", 101), ("b", 10)], {"a": -50, "b": -5}, D("100"), D("100")) == [("a", 51), ("b", 5)]
    # refunding more than the amount reverses everything once, nothing more
    assert refund_reversals([("a", 101)], {"a": -101}, D("150"), D("100")) == []
    assert refund_reversals([("a", 101)], {}, D("10"), D("0")) == []
