"""Every mode x qualification x (allowed) validity x demotion_step (DOMAIN §3.1 and §3.4): a member
qualifies for gold on 1 March 2026; promotion follows at once (but not in fixed mode), the claim ends
exactly where its validity says, and demotion happens one second after that end plus grace."""

from datetime import datetime, timedelta

import pytest

from tests.tiers.test_engine import GOLD, MEMBER, SILVER, TZ, held, ladder, nights, rule, run, t
from tiers.engine import evaluate
from tiers.types import DailyMetrics

QUALIFIED_ON = "2026-03-01"
EVENT_DAY_END = t("2026-03-02 00:00")
ENROLLED = t("2025-06-15 12:00")
GRACE = 10

# (qualification, validity, extra fields, expected claim end or None for "never")
CASES = [
    ("calendar_year", "end_of_period", {}, t("2027-01-01 00:00")),
    ("calendar_year", "end_of_next_period", {}, t("2028-01-01 00:00")),
    ("calendar_year", "fixed_days", {"validity_days": 100}, EVENT_DAY_END + timedelta(days=100)),
    ("calendar_year", "indefinite", {}, None),
    ("calendar_month", "end_of_period", {}, t("2026-04-01 00:00")),
    ("calendar_month", "end_of_next_period", {}, t("2026-05-01 00:00")),
    ("calendar_month", "fixed_days", {"validity_days": 100}, EVENT_DAY_END + timedelta(days=100)),
    ("calendar_month", "indefinite", {}, None),
    ("anniversary", "end_of_period", {}, t("2026-06-15 00:00")),
    ("anniversary", "end_of_next_period", {}, t("2027-06-15 00:00")),
    ("anniversary", "fixed_days", {"validity_days": 100}, EVENT_DAY_END + timedelta(days=100)),
    ("anniversary", "indefinite", {}, None),
    ("rolling", "while_qualified", {"window_days": 30}, t("2026-03-31 00:00")),
    ("rolling", "fixed_days", {"window_days": 30, "validity_days": 100}, t("2026-03-31 00:00") + timedelta(days=100)),
    ("lifetime", "indefinite", {}, None),
]
MODES = ["dynamic", "hybrid", "fixed"]
STEPS = ["to_qualified", "one_tier"]


def _metrics() -> DailyMetrics:
    return DailyMetrics({datetime.fromisoformat(QUALIFIED_ON).date(): {"quantity:nights": 30}})


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("qualification", "validity", "extra", "claim_end"), CASES, ids=[f"{q}-{v}" for q, v, _, _ in CASES]
)
def test_every_combination(qualification, validity, extra, claim_end, mode, step):
    spec = ladder(
        rules=(rule(10, SILVER, nights(10)), rule(20, GOLD, nights(25))),
        mode=mode,
        qualification=qualification,
        validity=validity,
        grace_days=GRACE,
        demotion_step=step,
        **extra,
    )
    start = held(enrolled_at=ENROLLED)
    promoted = run(spec, _metrics(), t("2026-03-02 09:00"), start)
    if mode == "fixed":
        assert (promoted.to_tier_id, promoted.kind) == (MEMBER.id, "none")
    else:
        assert (promoted.to_tier_id, promoted.kind, promoted.rule_id) == (GOLD.id, "promotion", 20)
        if qualification == "rolling":
            # Last seen qualified today (2 March): the claim runs from the end of today, for now.
            today_end = t("2026-03-03 00:00") + timedelta(days=extra.get("validity_days", 0))
            assert promoted.valid_until == today_end
        else:
            assert promoted.valid_until == claim_end

    at_gold = held(GOLD, enrolled_at=ENROLLED)
    if claim_end is None:  # indefinite: never demoted, in any mode
        assert run(spec, _metrics(), t("2099-01-01 00:00"), at_gold).kind == "none"
        return
    boundary = claim_end + timedelta(days=GRACE)
    assert run(spec, _metrics(), boundary, at_gold).to_tier_id == GOLD.id
    after = evaluate(spec, _member(), at_gold, _metrics(), boundary + timedelta(seconds=1), TZ)
    if mode == "fixed":
        assert after.kind == "none"
    else:
        # Silver's claim (nights ≥ 10) ended at the same instant: to_qualified drops to member, one_tier
        # lands on silver with a soft-landing claim.
        expected = MEMBER if step == "to_qualified" else SILVER
        assert (after.to_tier_id, after.kind) == (expected.id, "demotion")
        assert [c.source for c in after.granted] == ([] if step == "to_qualified" else ["soft_landing"])


def _member():
    from tests.tiers.test_engine import member

    return member()
