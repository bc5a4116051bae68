"""Static validation (DOMAIN §9) on engine specs: one table row per situation, with the exact issues
(severity, code, the objects concerned) it must produce — and the clean variants that must produce none."""

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from points.types import ConversionRuleSpec, ModifierSpec, Policy
from simulation.config import Program
from simulation.validation import ObjectRef, single_event_award, validate
from tiers.types import CriterionSpec, RuleSpec, TierSpec, TierTypeSpec

BASE, SILVER, GOLD, PLAT = (
    TierSpec(1, "member", 1, is_default=True),
    TierSpec(2, "silver", 2),
    TierSpec(3, "gold", 3),
    TierSpec(4, "platinum", 4),
)
LADDER = (BASE, SILVER, GOLD, PLAT)
JAN, JUL = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC)


def c(metric: str, operator: str, value: object, window: int | None = None) -> CriterionSpec:
    return CriterionSpec(metric, operator, value, window)


def promo(pk: int, target: TierSpec, *criteria: CriterionSpec, **extra: object) -> RuleSpec:
    return RuleSpec(pk, f"r{pk}", "promotion", target.id, criteria, **extra)  # type: ignore[arg-type]


def demo(pk: int, target: TierSpec | None, *criteria: CriterionSpec, **extra: object) -> RuleSpec:
    return RuleSpec(pk, f"r{pk}", "demotion", target.id if target else None, criteria, **extra)  # type: ignore[arg-type]


def ladder_rules(*extra: RuleSpec) -> tuple[RuleSpec, ...]:
    """A clean ladder: nights 10 / 25 / 50."""
    return (
        promo(11, SILVER, c("quantity:nights", "gte", 10)),
        promo(12, GOLD, c("quantity:nights", "gte", 25)),
        promo(13, PLAT, c("quantity:nights", "gte", 50)),
        *extra,
    )


def pr(pk: int, **extra: object) -> ConversionRuleSpec:
    fields: dict = {"base": "per_amount", "points_per_unit": 10, "unit_amount": Decimal(1)} | extra
    return ConversionRuleSpec(pk, f"p{pk}", **fields)


def program(
    rules: tuple[RuleSpec, ...] = (),
    tiers: tuple[TierSpec, ...] = LADDER,
    mode: str = "hybrid",
    point_rules: tuple[ConversionRuleSpec, ...] = (),
    modifiers: tuple[ModifierSpec, ...] = (),
    policy: Policy = Policy(),  # noqa: B008
) -> Program:
    spec = TierTypeSpec(1, "hotel", tiers, rules, mode=mode)
    return Program((spec,), point_rules, modifiers, policy, {}, ZoneInfo("UTC"))


HOTEL = ObjectRef("tier_type", 1, "hotel")


def tier(t: TierSpec) -> ObjectRef:
    return ObjectRef("tier", t.id, t.code)


def rule(pk: int) -> ObjectRef:
    return ObjectRef("promotion_rule", pk, f"r{pk}")


def point(pk: int) -> ObjectRef:
    return ObjectRef("conversion_rule", pk, f"p{pk}")


POLICY = ObjectRef("point_policy", None, "policy")

CASES = [
    ("clean ladder", program(ladder_rules()), []),
    # thresholds_not_rising
    (
        "gold not above silver",
        program(
            (
                promo(11, SILVER, c("quantity:nights", "gte", 25)),
                promo(12, GOLD, c("quantity:nights", "gte", 25)),
                promo(13, PLAT, c("quantity:nights", "gte", 50)),
            )
        ),
        [("warning", "thresholds_not_rising", (HOTEL, tier(SILVER), tier(GOLD), rule(11), rule(12)))],
    ),
    (
        "platinum below silver, though above gold, is reported against silver",
        program(
            (
                promo(11, SILVER, c("spend", "gte", 1000)),
                promo(12, GOLD, c("spend", "gte", 500)),
                promo(13, PLAT, c("spend", "gte", 800)),
            )
        ),
        [
            ("warning", "thresholds_not_rising", (HOTEL, tier(SILVER), tier(GOLD), rule(11), rule(12))),
            ("warning", "thresholds_not_rising", (HOTEL, tier(SILVER), tier(PLAT), rule(11), rule(13))),
        ],
    ),
    (
        "strict above non-strict at the same value rises",
        program(
            (
                promo(11, SILVER, c("spend", "gte", 1000)),
                promo(12, GOLD, c("spend", "gt", 1000)),
                promo(13, PLAT, c("spend", "gt", 2000)),
            )
        ),
        [],
    ),
    (
        "the lowest of a tier's thresholds counts",
        program(ladder_rules(promo(14, GOLD, c("quantity:nights", "gte", 5)))),
        [("warning", "thresholds_not_rising", (HOTEL, tier(SILVER), tier(GOLD), rule(11), rule(14)))],
    ),
    (
        "different windows are different metrics",
        program(ladder_rules(promo(14, GOLD, c("quantity:nights", "gte", 5, 30)))),
        [],
    ),
    (
        "attributes and days inactive are no thresholds",
        program(
            ladder_rules(promo(14, GOLD, c("attribute:age", "gte", 1)), promo(15, SILVER, c("attribute:age", "gte", 9)))
        ),
        [],
    ),
    # tier_unreachable
    (
        "climbable gold without a rule",
        program(ladder_rules()[::2]),
        [("warning", "tier_unreachable", (HOTEL, tier(GOLD)))],
    ),
    (
        "not climbable is by design",
        program(ladder_rules()[::2], tiers=(BASE, SILVER, TierSpec(3, "gold", 3, climbable=False), PLAT)),
        [],
    ),
    ("fixed mode never climbs", program((), mode="fixed"), []),
    (
        "a rule that can never fire does not reach",
        program(
            (*ladder_rules()[::2], promo(12, GOLD, c("spend", "gte", 99), effective_from=JUL, effective_until=JAN))
        ),
        [
            ("error", "window_inverted", (HOTEL, rule(12))),
            ("warning", "tier_unreachable", (HOTEL, tier(GOLD))),
        ],
    ),
    (
        "the lowest tier is the entry when none is flagged",
        program(ladder_rules(), tiers=(TierSpec(1, "member", 1), SILVER, GOLD, PLAT)),
        [],
    ),
    # rules_overlap
    (
        "an ordinary ladder's promotion rules overlap by design",
        program(ladder_rules(promo(14, GOLD, c("spend", "gte", 5000)), promo(15, PLAT, c("spend", "gte", 9000)))),
        [],
    ),
    (
        "demotion rules of equal priority to different targets, both met",
        program(
            ladder_rules(
                demo(21, SILVER, c("days_inactive", "gte", 180)), demo(22, None, c("days_inactive", "gte", 90))
            )
        ),
        [("warning", "rules_overlap", (HOTEL, rule(21), rule(22)))],
    ),
    (
        "different priorities decide",
        program(
            ladder_rules(
                demo(21, SILVER, c("days_inactive", "gte", 180)),
                demo(22, None, c("days_inactive", "gte", 90), priority=1),
            )
        ),
        [],
    ),
    (
        "same target",
        program(ladder_rules(demo(21, SILVER, c("days_inactive", "gte", 180)), demo(22, SILVER, c("spend", "lt", 10)))),
        [],
    ),
    (
        "disjoint criteria cannot both hold",
        program(ladder_rules(demo(21, SILVER, c("spend", "lt", 5000)), demo(22, BASE, c("spend", "gte", 5000)))),
        [],
    ),
    (
        "disjoint attribute values cannot both hold",
        program(
            ladder_rules(
                demo(21, SILVER, c("attribute:country", "in", ["TH", "SG"])),
                demo(22, BASE, c("attribute:country", "eq", "MY")),
            )
        ),
        [],
    ),
    (
        "all-of with a contradiction never overlaps, any-of with one compatible criterion does",
        program(
            ladder_rules(
                demo(21, SILVER, c("transactions", "gt", 4), c("transactions", "lt", 5), combinator="all"),
                demo(22, BASE, c("transactions", "gte", 5)),
                demo(23, SILVER, c("transactions", "lt", 3), c("spend", "gte", 1), combinator="any", priority=2),
                demo(24, BASE, c("transactions", "gte", 3), priority=2),
            )
        ),
        [("warning", "rules_overlap", (HOTEL, rule(23), rule(24)))],
    ),
    (
        "a value unequal to both satisfies two '≠'",
        program(
            ladder_rules(
                demo(21, SILVER, c("attribute:country", "ne", "TH")), demo(22, BASE, c("attribute:country", "ne", "SG"))
            )
        ),
        [("warning", "rules_overlap", (HOTEL, rule(21), rule(22)))],
    ),
    (
        "windows that never meet do not overlap",
        program(
            ladder_rules(
                demo(21, SILVER, c("spend", "lt", 1), effective_until=JUL),
                demo(22, BASE, c("spend", "lt", 1), effective_from=JUL),
            )
        ),
        [],
    ),
    # demotion_points_up
    (
        "demotion to the top tier",
        program(ladder_rules(demo(21, PLAT, c("days_inactive", "gte", 180)))),
        [("error", "demotion_points_up", (HOTEL, rule(21), tier(PLAT)))],
    ),
    (
        "demotion to a middle tier demotes those above it",
        program(ladder_rules(demo(21, GOLD, c("days_inactive", "gte", 180)))),
        [],
    ),
    # window_inverted
    (
        "tier available window inverted",
        program(
            ladder_rules(), tiers=(BASE, SILVER, TierSpec(3, "gold", 3, available_from=JUL, available_until=JUL), PLAT)
        ),
        [("error", "window_inverted", (HOTEL, tier(GOLD)))],
    ),
    (
        "criterion window on a metric without one, and out of range",
        program(ladder_rules(promo(14, GOLD, c("tenure_days", "gte", 100, 30), c("spend", "gte", 1, 0)))),
        [("error", "window_inverted", (HOTEL, rule(14))), ("error", "window_inverted", (HOTEL, rule(14)))],
    ),
    (
        "point rule and modifier windows inverted",
        program(
            ladder_rules(),
            point_rules=(pr(1, effective_from=JUL, effective_until=JAN),),
            modifiers=(ModifierSpec(5, "double", starts_at=JUL, ends_at=JUL),),
        ),
        [
            ("error", "window_inverted", (point(1),)),
            ("error", "window_inverted", (ObjectRef("modifier", 5, "double"),)),
        ],
    ),
    # cap_below_award
    (
        "per-event award within caps",
        program(ladder_rules(), point_rules=(pr(1, base="per_event", points_per_unit=50, cap_per_event=50),)),
        [],
    ),
    (
        "per-event award above its own caps and the program's",
        program(
            ladder_rules(),
            point_rules=(
                pr(1, base="per_event", points_per_unit=50, cap_per_event=40, cap_per_day=49, cap_per_week=50),
            ),
            policy=Policy(cap_per_month=30),
        ),
        [("warning", "cap_below_award", (point(1), POLICY))],
    ),
    (
        "one unit above a daily cap",
        program(ladder_rules(), point_rules=(pr(1, points_per_unit=10, cap_per_day=9),)),
        [("warning", "cap_below_award", (point(1),))],
    ),
    (
        "the minimum amount's units above the cap",
        program(
            ladder_rules(),
            point_rules=(pr(1, points_per_unit=2, unit_amount=Decimal(10), min_amount=Decimal("55"), cap_per_event=9),),
        ),
        [("warning", "cap_below_award", (point(1),))],
    ),
    # point_rules_overlap
    (
        "equal priority in one group, one rule for any event type",
        program(ladder_rules(), point_rules=(pr(1, event_types=("transaction",)), pr(2))),
        [("warning", "point_rules_overlap", (point(1), point(2)))],
    ),
    (
        "disjoint scopes, other groups, other priorities, windows apart",
        program(
            ladder_rules(),
            point_rules=(
                pr(1, event_types=("transaction",)),
                pr(2, event_types=("mission",)),
                pr(3, partner="air", group="partner"),
                pr(4, partner="car", group="partner"),
                pr(5, channel="app", group="bonus", priority=1),
                pr(6, group="bonus", priority=2),
                pr(7, group="season", effective_until=JUL),
                pr(8, group="season", effective_from=JUL),
            ),
        ),
        [],
    ),
    (
        "a product rule meets a partner rule (an event can carry both)",
        program(ladder_rules(), point_rules=(pr(1, product="spa"), pr(2, partner="air"))),
        [("warning", "point_rules_overlap", (point(1), point(2)))],
    ),
]


@pytest.mark.parametrize(("program_", "expected"), [pytest.param(p, e, id=i) for i, p, e in CASES])
def test_validate(program_: Program, expected: list[tuple[str, str, tuple[ObjectRef, ...]]]) -> None:
    assert [(i.severity, i.code, i.objects) for i in validate(program_)] == expected


def test_messages_name_codes_in_sentences() -> None:
    issues = validate(
        program(
            (promo(11, SILVER, c("quantity:nights", "gte", 25)), promo(12, GOLD, c("quantity:nights", "gte", 20))),
            tiers=(BASE, SILVER, GOLD),
            point_rules=(
                pr(1, base="per_event", points_per_unit=50, cap_per_event=40),
                pr(2, event_types=("transaction",)),
            ),
        )
    )
    assert [i.message for i in issues] == [
        "In 'hotel', tier 'gold' (rank 3) is reached with nights ≥ 20 (rule 'r12'), which is not more than the "
        "lower tier 'silver' (rank 2) asks: nights ≥ 25 (rule 'r11'). Members would reach 'gold' no later than "
        "'silver'. Raise the threshold of the higher tier or lower the other.",
        "The point rule 'p1' gives 50 points for each event, but its cap per event 40 is lower: every such event "
        "is cut to the cap. Raise the cap or lower the rule's points.",
        "The point rules 'p1' and 'p2' are both in group 'base' with priority 0 and can match the same event; only "
        "one of them awards points for it, and the order they were created in decides which ('p1'). Give the one "
        "that should win a higher priority, or narrow their event types, product, partner, source or channel so "
        "they no longer meet.",
    ]


def test_error_messages() -> None:
    issues = validate(
        program(ladder_rules(demo(21, PLAT, c("days_inactive", "gte", 180), effective_from=JUL, effective_until=JAN)))
    )
    assert [i.message for i in issues] == [
        "The demotion rule 'r21' of 'hotel' is effective from 2026-07-01 00:00 until 2026-01-01 00:00, which ends "
        "no later than it starts: it never applies. Fix the dates.",
        "The demotion rule 'r21' of 'hotel' moves members to 'platinum', the highest tier: from every tier it "
        "applies to, that is up or sideways, so it never demotes anyone. Point it to a lower tier, or leave the "
        "target empty to step down one tier.",
    ]


@pytest.mark.parametrize(
    ("rule_", "award"),
    [
        (pr(1, base="per_event", points_per_unit=7), Decimal(7)),
        (pr(1, base="per_quantity", points_per_unit=3, quantity_name="nights"), Decimal(3)),
        (pr(1, points_per_unit=2), Decimal(2)),
        (pr(1, points_per_unit=2, unit_amount=Decimal(10), min_amount=Decimal(5)), Decimal(2)),
        (pr(1, points_per_unit=2, unit_amount=Decimal(10), min_amount=Decimal(35)), Decimal(6)),
    ],
)
def test_single_event_award(rule_: ConversionRuleSpec, award: Decimal) -> None:
    assert single_event_award(rule_) == award


def test_dates_read_in_the_tenant_time_zone() -> None:
    bangkok = replace(
        program(point_rules=(pr(1, effective_from=JUL, effective_until=JAN),)), tz=ZoneInfo("Asia/Bangkok")
    )
    [issue] = [i for i in validate(bangkok) if i.code == "window_inverted"]
    assert "effective from 2026-07-01 07:00 until 2026-01-01 07:00" in issue.message
