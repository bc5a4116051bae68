"""Input rules every API request obeys, whatever the endpoint (README "Input rules").

* JSON bodies: nested at most :data:`MAX_JSON_DEPTH` levels (deeper is a 400, decided before the
  document is parsed); no string or key anywhere holds NUL (U+0000) or a lone UTF-16 surrogate, and
  every number is finite (each a 422 naming the field, since PostgreSQL's jsonb and text columns
  cannot store them).
* Date-times (query filters and body fields): a UTC offset within ±15:59, the range PostgreSQL keeps,
  and an instant that exists in UTC between years 1 and 9999.
* Boolean query parameters: ``true``, ``false``, ``1`` or ``0`` (any letter case); anything else,
  an empty value included, is a 422 — never a guess.

Pure functions: no Django import, so parsers, filter backends and serializers share one definition.
"""

import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

MAX_JSON_DEPTH = 64
MAX_UTC_OFFSET = timedelta(hours=15, minutes=59)

_FORBIDDEN_CHARS = re.compile("[\x00\ud800-\udfff]")
# A JSON string token, escapes included: removed before brackets are counted.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_SUSPECT = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")

_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})
BOOLEAN_RULE = "Must be true, false, 1 or 0."


def exceeds_depth(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text nests arrays/objects deeper than ``limit``, judged without parsing it
    (so a hostile document never reaches the recursive parser)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    # Without any backslash before a quote, every quote delimits a string: split is far cheaper.
    outside = "".join(text.split('"')[::2]) if '\\"' not in text else _STRING.sub("", text)
    brackets = _NOT_BRACKETS.sub("", outside)
    depth = 0
    for char in brackets:
        if char in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def may_hold_bad_strings(text: str) -> bool:
    r"""Whether the JSON text could decode to a string holding NUL or a lone surrogate: both arrive
    only as ``\u`` escapes (raw control characters are not JSON, and decoded UTF-8 holds no
    surrogate). Most bodies have none and skip the walk."""
    return "\\u" in text and _SUSPECT.search(text) is not None


def string_problem(value: str) -> str | None:
    found = _FORBIDDEN_CHARS.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "Must not contain the NUL character (U+0000)."
    return "Must not contain a lone UTF-16 surrogate (U+D800–U+DFFF)."


def _join(path: str, key: str | int) -> str:
    return f"{path}.{key}" if path else str(key)


def json_problems(document: Any) -> dict[str, list[str]]:
    """Every place in a parsed JSON document that cannot be stored, as ``{"field.sub": [message]}``.

    A bad key is reported on the object holding it (the key itself is not echoed back). Iterative, so
    any depth the parser accepted is safe here."""
    problems: dict[str, list[str]] = {}
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        path, value = stack.pop()
        message: str | None = None
        if isinstance(value, str):
            message = string_problem(value)
        elif isinstance(value, float) and not math.isfinite(value):
            message = "Numbers must be finite."
        elif isinstance(value, dict):
            for key, item in value.items():
                key_message = string_problem(key)
                if key_message is not None:
                    problems.setdefault(path or "non_field_errors", []).append("Keys m" + key_message[1:])
                    continue
                stack.append((_join(path, key), item))
        elif isinstance(value, list):
            stack.extend((_join(path, index), item) for index, item in enumerate(value))
        if message is not None:
            problems.setdefault(path or "non_field_errors", []).append(message)
    return problems


def datetime_problem(value: datetime) -> str | None:
    """Why an aware date-time cannot be stored and compared, or None."""
    offset = value.utcoffset()
    if offset is not None and abs(offset) > MAX_UTC_OFFSET:
        return "The UTC offset must be within -15:59 and +15:59."
    try:
        value.astimezone(UTC)
    except OverflowError:
        return "The date-time is out of range (years 1 to 9999 in UTC)."
    return None


def datetimes_in(value: Any) -> Iterable[datetime]:
    """The date-times in a cleaned filter value (a date-time, or a range/list of them)."""
    if isinstance(value, datetime):
        yield value
    elif isinstance(value, slice):
        yield from (v for v in (value.start, value.stop) if isinstance(v, datetime))
    elif isinstance(value, list | tuple):
        yield from (v for v in value if isinstance(v, datetime))


def parse_boolean(raw: str) -> bool:
    """A boolean query parameter: true/false/1/0 in any letter case; ValueError otherwise."""
    lowered = raw.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(BOOLEAN_RULE)
