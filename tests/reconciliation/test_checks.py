"""The pure comparisons of reconciliation (``reconciliation.checks``): exact findings, and what is not
drift."""

from reconciliation.checks import Finding, benefit_findings, point_findings, tier_findings


def test_points_compare_per_event_with_operators_reversals_counted_in():
    found = point_findings(
        expected={1: 100, 2: 50, 3: 30, 4: 10},
        actual={1: 100, 2: 57, 3: 0, 5: 5, 4: 99},
        operator={3: -30},  # an operator reversed event 3: 0 is right
        names={1: "a", 2: "b", 3: "c", 4: "d", 5: "e"},
        unchecked={4},  # drew on a campaign pool
    )
    assert found == [
        Finding("points", "points_mismatch", "b", 50, 57, 2),
        Finding("points", "points_mismatch", "e", 0, 5, 5),
    ]


def test_tiers_compare_per_tier_type_and_leave_types_the_replay_never_enrolled():
    found = tier_findings(
        expected={10: 1, 20: 5, 40: 7},
        actual={10: 2, 20: 5, 30: 9},
        tier_codes={1: "member", 2: "silver", 5: "diner", 7: "basic", 9: "x"},
        type_codes={10: "hotel", 20: "dining", 30: "spa", 40: "golf"},
    )
    assert found == [
        Finding("tiers", "tier_mismatch", "hotel", "member", "silver", (10, 1)),
        Finding("tiers", "tier_missing", "golf", "basic", None, (40, 7)),
    ]


def test_benefits_missing_and_extra_but_not_what_was_used_up_out_of_stock_or_kept():
    found = benefit_findings(
        entitled={1, 2, 3, 4},
        active={1, 8, 9},
        closed={2},  # used up while entitled: not granted again
        exhausted={3},  # no stock left
        kept_on_loss={9},  # a voucher kept after the tier
        codes={1: "wifi", 2: "gift", 3: "suite", 4: "lounge", 8: "spa", 9: "voucher"},
    )
    assert found == [
        Finding("benefits", "benefit_missing", "lounge", "active", None, 4),
        Finding("benefits", "benefit_extra", "spa", None, "active", 8),
    ]
