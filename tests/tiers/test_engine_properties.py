"""Properties of the tier engine over generated activity (hypothesis)."""

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from unittest.mock import patch

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tiers.test_engine import GOLD, MEMBER, PLATINUM, SILVER, TZ, held, ladder, member, nights, rule, t
from tiers import claims
from tiers.engine import evaluate
from tiers.types import CriterionSpec, DailyMetrics

RULES = (rule(10, SILVER, nights(10)), rule(20, GOLD, nights(25)), rule(30, PLATINUM, nights(50)))
CONFIGS = st.sampled_from(
    [
        {"qualification": "calendar_year", "validity": "end_of_next_period", "grace_days": 90},
        {"qualification": "calendar_year", "validity": "end_of_period", "grace_days": 0},
        {"qualification": "calendar_month", "validity": "fixed_days", "validity_days": 60},
        {"qualification": "rolling", "window_days": 90, "validity": "while_qualified", "mode": "dynamic"},
        {"qualification": "rolling", "window_days": 30, "validity": "fixed_days", "validity_days": 30},
        {"qualification": "lifetime", "validity": "indefinite"},
    ]
)
EVENTS = st.lists(st.tuples(st.integers(0, 729), st.integers(0, 20)), max_size=30)
NOW = t("2027-12-31 12:00")
START = date(2026, 1, 1)


def metrics_from(events) -> DailyMetrics:
    days: dict[date, dict[str, Decimal]] = defaultdict(lambda: {"quantity:nights": Decimal(0)})
    for offset, n in events:
        days[START + timedelta(days=offset)]["quantity:nights"] += n
    return DailyMetrics(days)


@settings(max_examples=150, deadline=None)
@given(config=CONFIGS, events=EVENTS, order=st.randoms())
def test_arrival_order_does_not_change_the_decision(config, events, order):
    shuffled = list(events)
    order.shuffle(shuffled)
    spec = ladder(rules=RULES, **config)
    a = evaluate(spec, member(), held(), metrics_from(events), NOW, TZ)
    b = evaluate(spec, member(), held(), metrics_from(shuffled), NOW, TZ)
    assert (a.to_tier_id, a.valid_until, a.claims) == (b.to_tier_id, b.valid_until, b.claims)


@settings(max_examples=150, deadline=None)
@given(config=CONFIGS, events=EVENTS, extra=st.tuples(st.integers(0, 729), st.integers(1, 30)))
def test_promotion_is_monotone_in_added_activity(config, events, extra):
    spec = ladder(rules=RULES, **config)
    rank = {tier.id: tier.rank for tier in spec.tiers}
    before = evaluate(spec, member(), held(), metrics_from(events), NOW, TZ)
    after = evaluate(spec, member(), held(), metrics_from([*events, extra]), NOW, TZ)
    assert rank[after.to_tier_id] >= rank[before.to_tier_id]


@settings(max_examples=150, deadline=None)
@given(
    config=CONFIGS, events=EVENTS, current=st.sampled_from([MEMBER, SILVER, GOLD, PLATINUM]), immutable=st.booleans()
)
def test_never_below_default_and_immutable_never_moves(config, events, current, immutable):
    tiers = tuple(
        t_ if t_.id != current.id else t_.__class__(**{**t_.__dict__, "immutable": immutable})
        for t_ in (MEMBER, SILVER, GOLD, PLATINUM)
    )
    spec = ladder(rules=RULES, tiers=tiers, **config)
    decision = evaluate(spec, member(), held(current), metrics_from(events), NOW, TZ)
    assert {tier.id for tier in spec.tiers} >= {decision.to_tier_id}
    assert decision.to_tier_id is not None
    if immutable:
        assert decision.to_tier_id == current.id


CALENDAR = st.sampled_from(
    [
        {"qualification": "calendar_year", "validity": "end_of_next_period", "grace_days": 90},
        {"qualification": "calendar_month", "validity": "end_of_period", "grace_days": 0},
        {"qualification": "calendar_month", "validity": "fixed_days", "validity_days": 60},
        {"qualification": "anniversary", "validity": "fixed_days", "validity_days": 400, "grace_days": 30},
    ]
)
CRITERIA = st.builds(
    CriterionSpec,
    metric=st.sampled_from(["quantity:nights", "spend", "tenure_days"]),
    operator=st.sampled_from(["gte", "gt", "lt", "eq"]),
    value=st.integers(0, 30),
    window_days=st.sampled_from([None, None, 30]),
)
SIGNED_EVENTS = st.lists(
    st.tuples(
        st.integers(0, 120), st.sampled_from(["quantity:nights", "spend"]), st.sampled_from([-15, -10, 5, 10, 20])
    ),
    max_size=20,
)


@settings(max_examples=600, deadline=None)
@given(
    config=CALENDAR,
    events=SIGNED_EVENTS,
    criteria=st.lists(st.lists(CRITERIA, min_size=1, max_size=3), min_size=1, max_size=3),
    combinators=st.lists(st.sampled_from(["any", "all"]), min_size=3, max_size=3),
    now=st.integers(0, 400),
)
def test_the_rising_shortcut_gives_what_checking_every_day_gives(config, events, criteria, combinators, now):
    """Calendar claims skip the day-by-day search for rules whose running totals only rise
    (``_rises_with_the_day``); with the shortcut switched off the decision, claims and validity are
    the same, whatever the operators, windows and refunds (negative days)."""
    days: dict[date, dict[str, Decimal]] = defaultdict(dict)
    for offset, metric, n in events:
        row = days[START + timedelta(days=offset)]
        row[metric] = row.get(metric, Decimal(0)) + n
    targets = (SILVER, GOLD, PLATINUM)
    rules = tuple(rule(10 * (i + 1), targets[i], *c, combinator=combinators[i]) for i, c in enumerate(criteria))
    spec = ladder(rules=rules, **config)
    at = t("2026-01-01 12:00") + timedelta(days=now)
    fast = evaluate(spec, member(), held(), DailyMetrics(days), at, TZ)
    with patch.object(claims, "_rises_with_the_day", lambda *args: False):
        slow = evaluate(spec, member(), held(), DailyMetrics(days), at, TZ)
    assert (fast.to_tier_id, fast.valid_until, fast.claims) == (slow.to_tier_id, slow.valid_until, slow.claims)


def test_a_refund_after_the_crossing_does_not_take_the_crossing_away():
    """The running total rose to 15 nights on 10 January and a refund took 10 back on 20 January: the
    rule (10 nights in the year) held on a day of the year, so the claim stands (the rising shortcut
    must not apply to a total that falls)."""
    days = {date(2026, 1, 10): {"quantity:nights": Decimal(15)}, date(2026, 1, 20): {"quantity:nights": Decimal(-10)}}
    spec = ladder(rules=(rule(10, SILVER, nights(10)),), qualification="calendar_year", validity="end_of_period")
    decision = evaluate(spec, member(), held(), DailyMetrics(days), t("2026-03-01 12:00"), TZ)
    assert (decision.to_tier_id, decision.rule_id) == (SILVER.id, 10)


def test_a_window_that_was_met_and_then_emptied_still_earned_the_period():
    """12 nights in January meet "10 nights within 30 days" then; by June the window is empty. The rule
    held on a day of the year, so the year's claim stands (a criterion with its own window is never
    taken as rising)."""
    days = {date(2026, 1, 10): {"quantity:nights": Decimal(12)}}
    spec = ladder(rules=(rule(10, SILVER, nights(10, 30)),), qualification="calendar_year", validity="end_of_period")
    decision = evaluate(spec, member(), held(), DailyMetrics(days), t("2026-06-01 12:00"), TZ)
    assert (decision.to_tier_id, decision.rule_id) == (SILVER.id, 10)
