"""Compare two claim reports' JSON twins item by item: status, verdict, statistic, ci95, fragile, threshold, margin.

    python scripts/compare_reports.py BEFORE.json AFTER.json [--note-only]

Prints one line per item that differs (or exists on one side only) and a summary; exit 1 when any
item differs in one of them. --note-only leaves out the Hypothesis (drawn) items, whose
examples are drawn afresh by each design (now one seed per claim id: harness.suite.checks.claim_seed).
"""

from __future__ import annotations

import argparse
import json
import sys

FIELDS = ("claim", "status", "verdict", "statistic", "ci95", "fragile", "threshold", "margin")


def items(path: str) -> dict[str, dict]:
    doc = json.load(open(path, encoding="utf-8"))
    return {i["nodeid"]: {**i, "claim": c["claim"]} for c in doc["claims"] for i in c["items"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--note-only", action="store_true", help="only the items at the note's factors")
    args = parser.parse_args(argv)
    before, after = items(args.before), items(args.after)
    keep = (lambda n: not n.split("::")[-1].split("[")[0].endswith("_drawn")) if args.note_only else (lambda n: True)
    same = differ = 0
    for nodeid in sorted(set(before) | set(after)):
        if not keep(nodeid):
            continue
        a, b = before.get(nodeid), after.get(nodeid)
        if a is None or b is None:
            print(f"only {'after' if a is None else 'before'}: {nodeid}")
            differ += 1
            continue
        diffs = [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in FIELDS if a.get(k) != b.get(k)]
        if diffs:
            print(f"{nodeid}: " + "; ".join(diffs))
            differ += 1
        else:
            same += 1
    print(f"{same} items identical in {', '.join(FIELDS)}; {differ} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
