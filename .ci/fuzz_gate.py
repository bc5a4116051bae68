"""Reads a Schemathesis NDJSON report: fails on server errors (ST101), undocumented status codes
(ST103) and responses that violate their schema (ST108); prints every other finding."""

import json
import sys
from collections import Counter

GATED = {"ST101": "server error", "ST103": "undocumented status code", "ST108": "response violates schema"}


def main(report: str, output: str, st_status: str) -> int:
    counts: Counter[str] = Counter()
    gated: list[str] = []
    operations: set[str] = set()
    errors: list[str] = []
    with open(report) as fh:
        for line in fh:
            event = json.loads(line)
            if "NonFatalError" in event:
                errors.append(str(event["NonFatalError"].get("info", event["NonFatalError"]))[:300])
            finished = event.get("ScenarioFinished")
            if not finished:
                continue
            label = finished.get("recorder", {}).get("label")
            if label:
                operations.add(label)
            for found in _failures(finished):
                key = (found["code"], found["operation"], found["message"])
                counts[found["code"]] += 1
                if found["code"] in GATED and f"{key}" not in gated:
                    gated.append(f"{key}")
    print(f"fuzz: {len(operations)} operations exercised; findings by check: {dict(sorted(counts.items()))}")
    for error in errors:
        print(f"fuzz: runner error: {error}")
    for item in gated:
        print(f"fuzz: FAIL {item}")
    if len(operations) < 80:
        print("fuzz: FAIL fewer than 80 operations were exercised; see the runner's output:")
        with open(output) as fh:
            print(fh.read()[-5000:])
        return 1
    if gated:
        return 1
    print(f"fuzz: 0 server errors, 0 undocumented status codes, 0 schema violations (schemathesis exit {st_status})")
    return 0


def _failures(node: object) -> list[dict[str, str]]:
    """Every ``failure`` object anywhere under a scenario's recorded checks."""
    out: list[dict[str, str]] = []
    if isinstance(node, dict):
        failure = node.get("failure")
        if isinstance(failure, dict) and "code" in failure:
            out.append(failure)
        for value in node.values():
            out.extend(_failures(value))
    elif isinstance(node, list):
        for value in node:
            out.extend(_failures(value))
    return out


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
