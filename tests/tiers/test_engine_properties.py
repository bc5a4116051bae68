"""Properties of the tier engine over generated activity (hypothesis)."""

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tiers.test_engine import GOLD, MEMBER, PLATINUM, SILVER, TZ, held, ladder, member, nights, rule, t
from tiers.engine import evaluate
from tiers.types import DailyMetrics

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
