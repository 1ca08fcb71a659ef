"""Outcomes: what each claim test reported, gathered into the report's document (the JSON twin).

    item = ItemResult("claims/test_growth.py::test_C3_note[0.5]")
    item.outcome = ClaimOutcome.from_json(text)     # the test's `claim_outcome` user property
    item.pytest_outcome = "passed"
    doc = build_document([item], run_info)          # JSON-ready dict: run, session, claims
    doc["claims"][3]["status"]                      # "holds", "refuted", ..., "not run"

The contract with `claims/`: every claim test attaches one user property `("claim_outcome", <JSON
string>)`, a harness.outcome.ClaimOutcome as JSON (at least its REQUIRED_KEYS). A test that
ends without one shows as "error" when it failed and as "not run" when it was skipped or never ran.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

from harness.judgement import CLAIMS
from harness.outcome import ERROR, NOT_RUN, PROPERTY, STATUSES, ClaimOutcome, OutcomeError, finite

FORMAT = "claims-report/1"

_CLAIM_IN_NAME = re.compile(r"::(?:[\w.]+::)?test_(C\d+)_")


@dataclass
class ItemResult:
    """One claim test item as the report sees it; filled from its pytest reports."""

    nodeid: str
    outcome: ClaimOutcome | None = None  # the test's claim outcome, None when it attached none
    pytest_outcome: str = NOT_RUN  # "passed", "failed", "error", "skipped", "not run"
    message: str = ""  # why it failed, errored or was skipped (first lines of pytest's text)
    problems: list[str] = field(default_factory=list)  # contract violations seen while collecting

    @property
    def claim(self) -> str | None:
        if self.outcome is not None:
            return self.outcome.claim
        return claim_of(self.nodeid)

    @property
    def status(self) -> str:
        if self.problems:
            return ERROR
        if self.outcome is not None:
            return self.outcome.status
        if self.pytest_outcome in ("failed", "error", "passed"):
            return ERROR  # a passing claim test that attached no outcome broke the contract
        return NOT_RUN

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "nodeid": self.nodeid,
            "status": self.status,
            "pytest_outcome": self.pytest_outcome,
            "message": self.message,
            "problems": list(self.problems),
        }
        if self.outcome is not None:
            out.update({k: v for k, v in self.outcome.to_dict().items() if k not in ("nodeid", "claim", "status")})
        elif self.pytest_outcome == "passed":
            out["message"] = f"the test passed but attached no {PROPERTY!r} user property"
        return out


def claim_of(nodeid: str) -> str | None:
    """The claim id in a test's name: 'claims/x.py::test_C3_growth[0.5]' -> 'C3'."""
    match = _CLAIM_IN_NAME.search(nodeid)
    return match.group(1) if match else None


def check_travels(name: str, value: object) -> str | None:
    """Why a user property cannot travel to the xdist controller as JSON, or None when it can."""
    if name == PROPERTY:
        try:
            ClaimOutcome.from_json(value)
        except OutcomeError as exc:
            return str(exc)
        return None
    try:
        json.dumps(value, allow_nan=True)
    except (TypeError, ValueError) as exc:
        return f"user property {name!r} is not JSON-serializable ({exc}); attach plain numbers, strings, lists and dicts"
    return None


def worst(statuses: list[str]) -> str:
    return min(statuses, key=STATUSES.index) if statuses else NOT_RUN


def build_document(items: list[ItemResult], run: dict, session: dict | None = None) -> dict:
    """The report's content as JSON-ready data; the HTML is drawn from exactly this."""
    by_claim: dict[str, list[ItemResult]] = {cid: [] for cid in CLAIMS}
    unassigned: list[ItemResult] = []
    for item in items:
        cid = item.claim
        if cid is None:
            unassigned.append(item)
        else:
            by_claim.setdefault(cid, []).append(item)
    claims = []
    for cid, group in by_claim.items():
        known = CLAIMS.get(cid)
        first = next((i.outcome for i in group if i.outcome is not None), None)  # the wording the run used
        claims.append(
            {
                "claim": cid,
                "section": first.section if first else known.section if known else "",
                "title": first.title if first else known.title if known else "",
                "statement": first.statement if first else known.statement if known else "",
                "test": first.test if first else known.test if known else "",
                "status": worst([i.status for i in group]),
                "margin": _least([i.outcome.margin for i in group if i.outcome is not None]),
                "items": [i.to_dict() for i in group],
            }
        )
    counts: dict[str, int] = {}
    for item in items:
        counts[item.status] = counts.get(item.status, 0) + 1
    doc = {
        "format": FORMAT,
        "run": run,
        "session": {**(session or {}), "items": len(items), "counts": {s: counts[s] for s in STATUSES if s in counts}},
        "claims": claims,
        "unassigned": [i.to_dict() for i in unassigned],
    }
    return finite(doc)


def _least(margins: list[object]) -> float | None:
    numbers = [float(m) for m in margins if isinstance(m, int | float) and not isinstance(m, bool) and math.isfinite(m)]
    return min(numbers) if numbers else None
