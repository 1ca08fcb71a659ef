"""Outcomes: what each claim test reported, gathered into the report's document (the JSON twin).

    item = ItemResult("claims/test_growth.py::test_C3_note[0.5]")
    item.outcome = ClaimOutcome.from_json(text)     # the test's `claim_outcome` user property
    item.pytest_outcome = "passed"
    doc = build_document([item], run_info)          # JSON-ready dict: run, session, claims, matrix (, layer_map, intervention_map)
    doc["claims"][3]["status"]                      # "holds", "refuted", ..., "not run"
    doc["matrix"]["cells"]                          # per (model, claim): the deciding item at the judged layer
    assemble([("C3", item_dict), ...], run, session)   # the same document from item dicts (report merge)

The contract with `claims/`: every claim test attaches one user property `("claim_outcome", <JSON
string>)`, a harness.judge.outcome.ClaimOutcome as JSON (at least its REQUIRED_KEYS). A test that
ends without one shows as "error" when it failed and as "not run" when it was skipped or never ran.

The document (docs/readme-multi.md; the page helper renders it):
- run: the run info, with "models": one dict per model (model, revision, architecture, first_token,
  blocks, device, dtype, source, layer, layers, intervention, interventions; error when it could not load);
- claims: per claim its items (each with "model" and "layer"), its status (the most serious item's)
  and margin (the least at each model's judged layer);
- matrix: per (model, claim) the item that decides the claim at the model's judged layer and
  intervention: the most serious status, ties broken by the smallest margin;
- layer_map (only when a model ran a layer map): per model, claim × layer margin, status, statistic;
- intervention_map (only when a model ran --interventions): per model, claim × kind margin, status,
  statistic at the judged layer, and the judged kind;
- session: exit status, notes, and counts per status plus "fragile" (measured items whose interval
  crosses the threshold).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.judge.claim import CLAIMS
from harness.judge.outcome import ERROR, NOT_RUN, PROPERTY, STATUSES, ClaimOutcome, OutcomeError, finite
from harness.suite.runs import model_in_nodeid

FORMAT = "claims-report/1"  # same format since wave 1: the new keys are additions, an old reader ignores them
# Per-model run info the document carries for each model (harness.suite.runs.ModelRun.info), in this order.
MODEL_KEYS = (
    "model", "revision", "architecture", "first_token", "blocks", "device", "dtype", "source", "layer", "layers",
    "intervention", "interventions", "error",
)  # fmt: skip
_LAYER_IN_ID = re.compile(r"-L(\d+)(?:-|\]$)")

_CLAIM_IN_NAME = re.compile(r"::(?:[\w.]+::)?test_(C\d+)_")


@dataclass
class ItemResult:
    """One claim test item as the report sees it; filled from its pytest reports."""

    nodeid: str
    outcome: ClaimOutcome | None = None  # the test's claim outcome, None when it attached none
    pytest_outcome: str = NOT_RUN  # "passed", "failed", "error", "skipped", "not run"
    message: str = ""  # why it failed, errored or was skipped (first lines of pytest's text)
    problems: list[str] = field(default_factory=list)  # contract violations seen while collecting
    model: str | None = None  # the test's model, when known without an outcome (its model property, its id)
    claim_id: str | None = None  # the claim its `claim` marker names, when the collector saw the item

    @property
    def claim(self) -> str | None:
        if self.outcome is not None:
            return self.outcome.claim
        return self.claim_id or claim_of(self.nodeid)

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
            "model": self.model,
            "layer": None,
        }
        if self.outcome is not None:
            out.update({k: v for k, v in self.outcome.to_dict().items() if k not in ("nodeid", "claim", "status")})
        elif self.pytest_outcome == "passed":
            out["message"] = f"the test passed but attached no {PROPERTY!r} user property"
        return out


def claim_of(nodeid: str) -> str | None:
    """The claim id in the name of a test that has no claim marker (a hand-made claims module):
    'claims/x.py::test_C3_growth[0.5]' -> 'C3'. A test made by claim_tests is known by its marker."""
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
    run = {**run, "models": run.get("models") or [{k: run[k] for k in MODEL_KEYS if k in run}]}
    models = [str(m.get("model")) for m in run["models"]]
    judged = _judged_layers(run)
    pairs = []
    for item in items:
        data = item.to_dict()
        if data["model"] is None:
            data["model"] = model_in_nodeid(item.nodeid, models) or (models[0] if len(models) == 1 else None)
        if data["layer"] is None and item.outcome is None:
            found = _LAYER_IN_ID.search(item.nodeid.rpartition("[")[2])
            data["layer"] = int(found.group(1)) if found else judged.get(data["model"], (None, ""))[0]
        pairs.append((item.claim, data))
    return assemble(pairs, run, session)


def assemble(items: list[tuple[str | None, dict]], run: dict, session: dict | None = None) -> dict:
    """The document from (claim id or None, item dict) pairs and the run info (see the module docstring)."""
    judged = _judged_layers(run)
    from harness.note import NOTE_CLAIMS

    note = [c.id for c in NOTE_CLAIMS]
    assigned = [cid for cid, _ in items if cid is not None]
    by_claim: dict[str, list[dict]] = {cid: [] for cid in note} if not assigned or set(assigned) & set(note) else {}
    unassigned: list[dict] = []
    for cid, item in items:
        if cid is None:
            unassigned.append(item)
        else:
            by_claim.setdefault(cid, []).append(item)
    claims = []
    for cid, group in by_claim.items():
        wording = _about(cid, group)
        at_judged = [i for i in group if _is_judged(i, judged)]
        claims.append(
            {
                "claim": cid,
                **wording,
                "status": worst([i["status"] for i in group]),
                "margin": _least([i.get("margin") for i in at_judged]),
                "items": group,
            }
        )
    everything = [item for _, item in items]
    counts: dict[str, int] = {}
    for item in everything:
        counts[item["status"]] = counts.get(item["status"], 0) + 1
    doc = {
        "format": FORMAT,
        "run": run,
        "session": {
            **(session or {}),
            "items": len(everything),
            "counts": {**{s: counts[s] for s in STATUSES if s in counts}, "fragile": sum(i.get("fragile") is True for i in everything)},
        },
        "claims": claims,
        "unassigned": unassigned,
        "matrix": _matrix(claims, run, judged),
    }
    layer_map = _layer_map(claims, run, judged)
    if layer_map:
        doc["layer_map"] = layer_map
    intervention_map = _intervention_map(claims, run, judged)
    if intervention_map:
        doc["intervention_map"] = intervention_map
    return finite(doc)


def deciding(items: list[dict]) -> dict | None:
    """The item whose status is the group's: the most serious, ties broken by the smallest margin."""
    if not items:
        return None
    status = worst([i["status"] for i in items])
    return min((i for i in items if i["status"] == status), key=lambda i: _margin(i.get("margin")))


def _matrix(claims: list[dict], run: dict, judged: dict[str, int | None]) -> dict:
    models = [str(m.get("model")) for m in run["models"]]
    cells = []
    for model in models:
        for claim in claims:
            item = deciding([i for i in claim["items"] if i.get("model") == model and _is_judged(i, judged)]) or {}
            cells.append(
                {
                    "model": model,
                    "claim": claim["claim"],
                    "status": item.get("status", NOT_RUN),
                    **{k: item.get(k) for k in ("statistic", "threshold", "ci95", "fragile")},
                    "needs": claim.get("needs") or None,
                    "statistic_name": claim.get("statistic_name") or None,
                    "nodeid": item.get("nodeid"),
                }
            )
    return {"models": models, "claims": [c["claim"] for c in claims], "cells": cells}


def _layer_map(claims: list[dict], run: dict, judged: dict[str, tuple[int | None, str]]) -> dict:
    """Per model that ran --layers: claim × layer margin, status, statistic, under the judged intervention."""

    def at(item: dict, layer: object) -> bool:
        return item.get("layer") == layer and _is_judged({**item, "layer": None}, judged)

    return _map(claims, run, "layers", "layer_map", at)


def _intervention_map(claims: list[dict], run: dict, judged: dict[str, tuple[int | None, str]]) -> dict:
    """Per model that ran --interventions: claim × kind margin, status, statistic, at the judged layer."""

    def at(item: dict, kind: object) -> bool:
        return item.get("intervention", "scale") == kind and _is_judged(item, judged, kind=None)

    out = _map(claims, run, "interventions", "intervention_map", at)
    for info in run["models"]:
        if str(info.get("model")) in out:
            out[str(info.get("model"))]["judged"] = info.get("intervention", "scale")
    return out


def _map(claims: list[dict], run: dict, axis: str, flag: str, at: Callable[[dict, object], bool]) -> dict:
    """Per model whose run info lists `axis` (layers, kinds): for each claim with `flag`, the deciding item per column."""
    out = {}
    for info in run["models"]:
        columns = info.get(axis)
        if not isinstance(columns, list) or not columns:
            continue
        model = str(info.get("model"))
        rows: dict[str, list] = {"margin": [], "status": [], "statistic": []}
        mapped = [c["claim"] for c in claims if c.get(flag)]
        for cid in mapped:
            items = [i for i in next((c["items"] for c in claims if c["claim"] == cid), []) if i.get("model") == model]
            cells = [deciding([i for i in items if at(i, column)]) for column in columns]
            for key in rows:
                rows[key].append([c.get(key) if c else None for c in cells])
        out[model] = {axis: list(columns), "claims": mapped, **rows}
    return out


# What the document says about a claim, from its record as the run's items carried it (Claim's fields).
ABOUT = ("section", "title", "statement", "test", "statistic_name", "needs", "figure", "layer_map", "intervention_map", "derived")


def _about(cid: str, group: list[dict]) -> dict[str, object]:
    """A claim's record as its items carried it; for a claim none of whose items ran, the record this process knows."""
    first = next((i for i in group if i.get("statement")), None) or {}  # the wording the run used
    known = CLAIMS.get(cid)
    names = {"statistic_name": "statistic"}
    return {k: first[k] if k in first else getattr(known, names.get(k, k), "") if known is not None else "" for k in ABOUT}


def _judged_layers(run: dict) -> dict[str, tuple[int | None, str]]:
    """model -> the layer and intervention kind its claims were judged at (--layer, --intervention); the maps' others are findings."""
    settings = run.get("settings") if isinstance(run.get("settings"), dict) else {}
    kind = settings.get("intervention", "scale")
    return {str(m.get("model")): (m.get("layer", run.get("layer")), m.get("intervention", kind)) for m in run.get("models") or []}


def _is_judged(item: dict, judged: dict[str, tuple[int | None, str]], kind: object = "judged") -> bool:
    """Whether `item` is at its model's judged layer and (unless kind=None) under its judged intervention."""
    layer, (expected, own) = item.get("layer"), judged.get(str(item.get("model")), (None, "scale"))
    at_layer = layer is None or expected is None or layer == expected
    return at_layer and (kind is None or item.get("intervention", "scale") == own)


def _margin(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) else math.inf


def _least(margins: list[object]) -> float | None:
    numbers = [float(m) for m in margins if isinstance(m, int | float) and not isinstance(m, bool) and math.isfinite(m)]
    return min(numbers) if numbers else None
