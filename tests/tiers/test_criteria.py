"""Criterion validation and the admin's text form (DOMAIN §3.3 metric table and operators)."""

import pytest

from tiers.criteria import (
    CriteriaError,
    format_criteria_text,
    normalize_criteria,
    parse_criteria_text,
    summarize_criterion,
)


def c(metric, operator, value, window_days=None):
    return {"metric": metric, "operator": operator, "value": value, "window_days": window_days}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (c("spend", "gte", "5000"), c("spend", "gte", 5000)),
        (c("spend", "gte", "2500.50"), c("spend", "gte", "2500.5")),
        (c("spend", "gt", 0.1), c("spend", "gt", "0.1")),
        (c("transactions", "eq", 3), c("transactions", "eq", 3)),
        (c("points", "lt", 100000), c("points", "lt", 100000)),
        (c("quantity:nights", "gte", 25, 365), c("quantity:nights", "gte", 25, 365)),
        (c("events:mission", "gte", 5), c("events:mission", "gte", 5)),
        (c("days_inactive", "gt", 180), c("days_inactive", "gt", 180)),
        (c("tenure_days", "gte", 365), c("tenure_days", "gte", 365)),
        (c("attribute:country", "in", ["TH", "SG"]), c("attribute:country", "in", ["TH", "SG"])),
        (c("attribute:vip", "eq", True), c("attribute:vip", "eq", True)),
        (c("attribute:age", "gte", "21"), c("attribute:age", "gte", 21)),
        (c("quantity:segments", "in", [1, "2"]), c("quantity:segments", "in", [1, 2])),
        (c("spend", "ne", 0), c("spend", "ne", 0)),
        (c("spend", "lte", 10), c("spend", "lte", 10)),
    ],
)
def test_valid_criteria_are_normalized(raw, expected):
    assert normalize_criteria([raw]) == [expected]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (c("revenue", "gte", 1), "metric 'revenue' is not one of"),
        (c("events:party", "gte", 1), "metric 'events:party'"),
        (c("quantity:", "gte", 1), "metric 'quantity:'"),
        (c("spend", "between", 1), "operator 'between'"),
        (c("spend", "gte", "lots"), "must be a number"),
        (c("spend", "gte", None), "must be a number"),
        (c("spend", "gte", True), "must be a number"),
        (c("spend", "gte", "NaN"), "must be a number"),
        (c("spend", "in", []), "non-empty list"),
        (c("spend", "in", 5), "non-empty list"),
        (c("attribute:tags", "eq", {"a": 1}), "must be scalar values"),
        (c("spend", "gte", 1, 0), "window_days must be a whole number"),
        (c("spend", "gte", 1, 5000), "window_days must be a whole number"),
        (c("spend", "gte", 1, "30"), "window_days must be a whole number"),
        (c("attribute:country", "eq", "TH", 30), "window_days does not apply"),
        (c("tenure_days", "gte", 1, 30), "window_days does not apply"),
        ({"metric": "spend", "operator": "gte"}, "value is required"),
        ({"metric": "spend", "operator": "gte", "value": 1, "colour": "red"}, "unknown field(s) colour"),
        ("spend >= 1", "must be an object"),
    ],
)
def test_invalid_criteria_name_the_problem(raw, message):
    with pytest.raises(CriteriaError) as excinfo:
        normalize_criteria([raw])
    assert excinfo.value.messages[0].startswith("Criterion 1: ")
    assert message in excinfo.value.messages[0]


def test_every_problem_is_reported_with_its_position():
    with pytest.raises(CriteriaError) as excinfo:
        normalize_criteria([c("spend", "gte", 1), c("bad", "gte", 1), c("spend", "xx", 1)])
    assert [m.split(":")[0] for m in excinfo.value.messages] == ["Criterion 2", "Criterion 3"]


@pytest.mark.parametrize("raw", [[], None, {}, "x", [c("spend", "gte", 1)] * 21])
def test_list_shape(raw):
    with pytest.raises(CriteriaError):
        normalize_criteria(raw)


def test_text_form_round_trips():
    text = "quantity:nights >= 25\nspend >= 5000.50 window 365\nattribute:country in TH, SG\nattribute:vip = true"
    criteria = parse_criteria_text(text)
    assert criteria == [
        c("quantity:nights", "gte", 25),
        c("spend", "gte", "5000.5", 365),
        c("attribute:country", "in", ["TH", "SG"]),
        c("attribute:vip", "eq", True),
    ]
    assert parse_criteria_text(format_criteria_text(criteria)) == criteria


def test_text_form_accepts_unicode_operators_and_blank_lines():
    assert parse_criteria_text("\n  quantity:stays ≥ 15  \n\n") == [c("quantity:stays", "gte", 15)]


def test_text_form_errors_name_the_line():
    with pytest.raises(CriteriaError) as excinfo:
        parse_criteria_text("quantity:nights >= 25\nnights are many")
    assert excinfo.value.messages == ["Line 2: write 'metric operator value [window N]', e.g. 'quantity:nights >= 25'."]


def test_summaries_read_like_a_sentence():
    assert summarize_criterion(c("quantity:nights", "gte", 25)) == "nights ≥ 25"
    assert summarize_criterion(c("spend", "gte", 5000, 365)) == "spend ≥ 5000 in 365 days"
    assert summarize_criterion(c("events:mission", "gt", 3)) == "mission events > 3"
    assert summarize_criterion(c("attribute:country", "in", ["TH", "SG"])) == "country in TH, SG"


@pytest.mark.django_db
def test_rule_summary(tenant):
    from tests.factories import hotel_ladder

    _, _, rule = hotel_ladder(tenant)
    assert rule.summary() == "Gold if nights ≥ 25 OR stays ≥ 15 in calendar year"
    rule.combinator = "all"
    rule.tier_type.qualification = "rolling"
    rule.tier_type.window_days = 365
    assert rule.summary() == "Gold if nights ≥ 25 AND stays ≥ 15 in the last 365 days"
