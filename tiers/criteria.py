"""Promotion-rule criteria: validation, normalisation, and the one-line text form the admin edits.

A criterion is ``{"metric", "operator", "value", "window_days"}`` (DOMAIN §3.3). This module is pure:
no ORM, no clock. Numeric values are kept as JSON integers when integral and as decimal strings
otherwise ("2500.50"), so money never passes through a float.

Text form, one criterion per line (what the admin shows and parses)::

    quantity:nights >= 25
    spend >= 5000 window 365
    attribute:country in TH, SG
"""

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

EVENT_TYPES = ("transaction", "mission", "campaign", "promo", "engagement", "refund", "custom")
SIMPLE_METRICS = ("spend", "transactions", "points", "days_inactive", "tenure_days")
UNWINDOWED_METRICS = ("days_inactive", "tenure_days")  # and every attribute:<name>
OPERATORS = ("gte", "gt", "lte", "lt", "eq", "ne", "in")
SYMBOLS = {"gte": ">=", "gt": ">", "lte": "<=", "lt": "<", "eq": "=", "ne": "!=", "in": "in"}
_FROM_SYMBOL = {**{v: k for k, v in SYMBOLS.items()}, "==": "eq", "≥": "gte", "≤": "lte", "≠": "ne"}
_NAME = r"[a-z0-9_\-]{1,64}"
_METRIC = re.compile(
    rf"^(?:{'|'.join(SIMPLE_METRICS)}|quantity:{_NAME}|events:(?:{'|'.join(EVENT_TYPES)})|attribute:[A-Za-z0-9_\-]{{1,64}})$"
)
MAX_CRITERIA = 20
MAX_WINDOW_DAYS = 3660


class CriteriaError(ValueError):
    """Invalid criteria; ``messages`` lists every problem, each naming the criterion (1-based)."""

    def __init__(self, messages: list[str]):
        self.messages = messages
        super().__init__("; ".join(messages))


@dataclass(frozen=True)
class Criterion:
    metric: str
    operator: str
    value: Any
    window_days: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "operator": self.operator, "value": self.value, "window_days": self.window_days}


def is_attribute(metric: str) -> bool:
    return metric.startswith("attribute:")


def _number(value: Any) -> int | str:
    """A JSON-safe exact number: int when integral, else a decimal string. Raises ValueError."""
    if isinstance(value, bool) or value is None:
        raise ValueError("not a number")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ValueError("not a number") from exc
    if not number.is_finite():
        raise ValueError("not a finite number")
    if number == number.to_integral_value():
        return int(number)
    return format(number.normalize(), "f")


def _scalar(value: Any) -> Any:
    if isinstance(value, str | bool | int) and not isinstance(value, dict | list):
        return value
    if isinstance(value, float):
        return _number(value)
    raise ValueError("not a scalar")


def normalize_criteria(raw: Any) -> list[dict[str, Any]]:
    """Validate a criteria list and return it in canonical form; raise :class:`CriteriaError`."""
    if not isinstance(raw, list) or not raw:
        raise CriteriaError(["At least one criterion is required."])
    if len(raw) > MAX_CRITERIA:
        raise CriteriaError([f"At most {MAX_CRITERIA} criteria per rule."])
    out: list[dict[str, Any]] = []
    errors: list[str] = []
    for index, item in enumerate(raw, start=1):
        try:
            out.append(_criterion(item).as_dict())
        except ValueError as exc:
            errors.append(f"Criterion {index}: {exc}")
    if errors:
        raise CriteriaError(errors)
    return out


def _criterion(item: Any) -> Criterion:
    if not isinstance(item, dict):
        raise ValueError("must be an object with metric, operator and value.")
    unknown = set(item) - {"metric", "operator", "value", "window_days"}
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}.")
    metric, operator = item.get("metric"), item.get("operator")
    if not isinstance(metric, str) or not _METRIC.match(metric):
        raise ValueError(
            f"metric {metric!r} is not one of {', '.join(SIMPLE_METRICS)}, quantity:<name>, "
            f"events:<{'|'.join(EVENT_TYPES)}>, attribute:<name>."
        )
    if operator not in OPERATORS:
        raise ValueError(f"operator {operator!r} is not one of {', '.join(OPERATORS)}.")
    if "value" not in item:
        raise ValueError("value is required.")
    value = item["value"]
    attribute = is_attribute(metric)
    try:
        if operator == "in":
            if not isinstance(value, list) or not value:
                raise ValueError("operator 'in' needs a non-empty list of values.")
            value = [(_scalar(v) if attribute else _number(v)) for v in value]
        elif attribute and operator in ("eq", "ne"):
            value = _scalar(value)
        else:
            value = _number(value)
    except ValueError as exc:
        if "operator 'in'" in str(exc):
            raise
        kind = "scalar values" if attribute and operator in ("eq", "ne", "in") else "a number"
        raise ValueError(f"value {value!r} for {metric} {operator} must be {kind}.") from exc
    window = item.get("window_days")
    if window is not None:
        if attribute or metric in UNWINDOWED_METRICS:
            raise ValueError(f"window_days does not apply to {metric} (it has no window).")
        if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= MAX_WINDOW_DAYS:
            raise ValueError(f"window_days must be a whole number of days from 1 to {MAX_WINDOW_DAYS}.")
    return Criterion(metric=metric, operator=operator, value=value, window_days=window)


# --- text form ------------------------------------------------------------------------------------
_LINE = re.compile(
    r"^\s*(?P<metric>\S+)\s+(?P<op>>=|<=|!=|==|=|>|<|≥|≤|≠|in)\s+(?P<value>.+?)(?:\s+window\s+(?P<window>\d+))?\s*$"
)


def parse_criteria_text(text: str) -> list[dict[str, Any]]:
    """Parse the admin's text form (one criterion per line) into canonical criteria."""
    raw: list[dict[str, Any]] = []
    errors: list[str] = []
    lines = [line for line in text.splitlines() if line.strip()]
    for number, line in enumerate(lines, start=1):
        match = _LINE.match(line)
        if not match:
            errors.append(f"Line {number}: write 'metric operator value [window N]', e.g. 'quantity:nights >= 25'.")
            continue
        operator = _FROM_SYMBOL[match["op"]]
        value_text = match["value"].strip()
        value: Any = [v.strip() for v in value_text.split(",") if v.strip()] if operator == "in" else value_text
        if is_attribute(match["metric"]):
            value = [_literal(v) for v in value] if isinstance(value, list) else _literal(value)
        item: dict[str, Any] = {"metric": match["metric"], "operator": operator, "value": value}
        if match["window"]:
            item["window_days"] = int(match["window"])
        raw.append(item)
    if errors:
        raise CriteriaError(errors)
    return normalize_criteria(raw)


def _literal(text: str) -> Any:
    """Attribute values typed in the admin: quoted strings, true/false, numbers, else plain text."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return _number(text)
    except ValueError:
        return text


def format_criterion(criterion: dict[str, Any]) -> str:
    value = criterion["value"]
    shown = ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
    text = f"{criterion['metric']} {SYMBOLS[criterion['operator']]} {shown}"
    if criterion.get("window_days"):
        text += f" window {criterion['window_days']}"
    return text


def format_criteria_text(criteria: list[dict[str, Any]]) -> str:
    return "\n".join(format_criterion(c) for c in criteria)


def _readable_metric(metric: str) -> str:
    for prefix in ("quantity:", "events:", "attribute:"):
        if metric.startswith(prefix):
            return metric[len(prefix) :] + (" events" if prefix == "events:" else "")
    return metric.replace("_", " ")


def summarize_criterion(criterion: dict[str, Any]) -> str:
    """'nights ≥ 25', 'spend ≥ 5000 in 365 days', 'country in TH, SG'."""
    symbol = {"gte": "≥", "lte": "≤", "ne": "≠"}.get(criterion["operator"], SYMBOLS[criterion["operator"]])
    value = criterion["value"]
    shown = ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
    text = f"{_readable_metric(criterion['metric'])} {symbol} {shown}"
    if criterion.get("window_days"):
        text += f" in {criterion['window_days']} days"
    return text
