"""A finished backtest's result (API.md "Wave 2 contract") as a business admin reads it: per tier type a
grouped bar chart of members per tier before and after, and a from → to migration matrix; the points
and liability change; benefit grants gained or lost; rule hits. Pure: the run's ``result`` in, plain
values and SVG out.

Charts are server-side SVG drawn by pygal, with its tooltip script switched off: the admin page loads
nothing from outside (no CDN, nothing fetched at run time).
"""

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pygal
from pygal.style import Style

NO_TIER = "no tier"
BASELINE_COLOUR = "#8a9bb0"
SCENARIO_COLOUR = "#2f7d5b"
STYLE = Style(
    background="transparent",
    plot_background="transparent",
    foreground="#333",
    foreground_strong="#222",
    foreground_subtle="#bbb",
    colors=(BASELINE_COLOUR, SCENARIO_COLOUR),
    font_family="-apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif",
    label_font_size=13,
    major_label_font_size=13,
    value_font_size=12,
    legend_font_size=13,
    title_font_size=15,
    tooltip_font_size=12,
)
RULE_KINDS = {"promotion": "Promotion", "demotion": "Demotion", "points": "Points conversion"}
STATUS_WORDS = {
    "queued": "Waiting to start",
    "running": "Running",
    "done": "Finished",
    "failed": "Failed",
    "cancelled": "Cancelled",
}


@dataclass(frozen=True)
class Cell:
    members: int
    shade: str  # a CSS background colour, stronger for more members
    stayed: bool  # on the diagonal: the member kept their tier


@dataclass(frozen=True)
class Matrix:
    tiers: list[str]  # row (baseline) and column (scenario) labels, in rank order
    rows: list[tuple[str, list[Cell], int]]  # label, cells, row total
    moved: int


@dataclass(frozen=True)
class TierTypeReport:
    code: str
    chart: str  # inline SVG
    rows: list[tuple[str, int, int, int]]  # tier, baseline, scenario, change
    matrix: Matrix


@dataclass(frozen=True)
class Report:
    members: int
    events: int
    tier_types: list[TierTypeReport]
    points: dict[str, int]
    liability_delta: Decimal
    points_chart: str
    benefits: list[tuple[str, int]]
    rules: list[dict[str, Any]] = field(default_factory=list)

    @property
    def moved(self) -> int:
        """Member-tier-type pairs whose tier differs."""
        return sum(t.matrix.moved for t in self.tier_types)


def report(result: dict[str, Any]) -> Report:
    """The run's result shaped for the run page."""
    points = result.get("points", {})
    return Report(
        members=int(result.get("members", 0)),
        events=int(result.get("events", 0)),
        tier_types=[_tier_type(row) for row in result.get("tier_types", [])],
        points={side: int(points.get(side, 0)) for side in ("baseline", "scenario", "delta")},
        liability_delta=Decimal(points.get("liability_delta", "0")),
        points_chart=_points_chart(int(points.get("baseline", 0)), int(points.get("scenario", 0))),
        benefits=sorted(result.get("benefits", {}).get("granted_delta", {}).items()),
        rules=[
            {
                "rule": r["rule"],
                "kind": RULE_KINDS.get(r["kind"], r["kind"].replace("_", " ").capitalize()),
                "baseline": r["baseline_hits"],
                "scenario": r["scenario_hits"],
                "change": r["scenario_hits"] - r["baseline_hits"],
            }
            for r in result.get("rules", [])
        ],
    )


def _tier_type(row: dict[str, Any]) -> TierTypeReport:
    tiers = list(row.get("tiers") or row["baseline"])  # rank order (jsonb does not keep key order)
    baseline, scenario = row["baseline"], row["scenario"]
    chart = pygal.Bar(
        style=STYLE,
        js=[],
        height=320,
        width=640,
        legend_at_bottom=True,
        print_values=True,
        print_zeroes=False,
        show_y_guides=True,
        x_title="Tier",
        y_title="Members",
        min_scale=1,
        max_scale=6,
        margin_top=20,
        value_formatter=lambda v: f"{int(v):,}",
    )
    chart.x_labels = tiers
    chart.add("Now (live rules)", [baseline.get(t, 0) for t in tiers])
    chart.add("With the scenario", [scenario.get(t, 0) for t in tiers])
    return TierTypeReport(
        code=row["tier_type"],
        chart=chart.render(is_unicode=True, disable_xml_declaration=True),
        rows=[(t, baseline.get(t, 0), scenario.get(t, 0), scenario.get(t, 0) - baseline.get(t, 0)) for t in tiers],
        matrix=matrix(tiers, baseline, row.get("transitions", [])),
    )


def matrix(tiers: list[str], baseline: dict[str, int], transitions: list[dict[str, Any]]) -> Matrix:
    """From (baseline tier, rows) → to (scenario tier, columns): the transitions, and on the diagonal
    the members who kept their tier (their baseline count less those who left it). Members without a
    tier on one side show as "no tier"."""
    labels = list(tiers)
    if any(t["from"] is None or t["to"] is None for t in transitions):
        labels = [NO_TIER, *labels]
    counts: dict[tuple[str, str], int] = {}
    for t in transitions:
        key = (t["from"] or NO_TIER, t["to"] or NO_TIER)
        counts[key] = counts.get(key, 0) + int(t["members"])
    for tier in tiers:
        left = sum(n for (a, _), n in counts.items() if a == tier)
        counts[(tier, tier)] = baseline.get(tier, 0) - left
    moved = sum(int(t["members"]) for t in transitions)
    top = max([n for (a, b), n in counts.items() if a != b] or [0])
    stay_top = max([n for (a, b), n in counts.items() if a == b] or [0])
    rows = []
    for a in labels:
        cells = []
        for b in labels:
            n = counts.get((a, b), 0)
            cells.append(Cell(members=n, shade=_shade(n, stay_top if a == b else top, a == b), stayed=a == b))
        rows.append((a, cells, sum(c.members for c in cells)))
    return Matrix(tiers=labels, rows=rows, moved=moved)


def _shade(n: int, top: int, stayed: bool) -> str:
    """Transparent for none; up to a strong green (moved) or grey (stayed) for the most members."""
    if n <= 0 or top <= 0:
        return "transparent"
    alpha = 0.12 + 0.68 * n / top
    return f"rgba(120, 120, 120, {alpha * 0.5:.2f})" if stayed else f"rgba(47, 125, 91, {alpha:.2f})"


def _points_chart(baseline: int, scenario: int) -> str:
    chart = pygal.HorizontalBar(
        style=STYLE,
        js=[],
        height=170,
        width=640,
        legend_at_bottom=True,
        print_values=True,
        show_x_guides=True,
        show_y_guides=False,
        margin_top=10,
        value_formatter=lambda v: f"{int(v):,}",
    )
    chart.x_labels = ["Points"]
    chart.add("Now (live rules)", [baseline])
    chart.add("With the scenario", [scenario])
    return chart.render(is_unicode=True, disable_xml_declaration=True)
