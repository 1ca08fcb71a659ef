"""What each field of a Claim takes: checked when the Claim is made and again at collection, one line each.

    problems = field_problems(claim)     # [] when every field has a form the suite can judge
    value = threshold_value(claim, "T", threshold, "bfloat16")   # a per-dtype threshold at the run's dtype

Each message names the claim (id and file), the field and what it takes, e.g.
"claim 'x' (my_claims/test_x.py): thresholds['T'] is 0.1, a float: write thresholds={'T': Threshold(0.1, 'why')}".
The checks read only the fields (no model, no profile); what a statistic returns is checked where it runs
(harness.judge.claim). Kept apart from the record itself so that each check is one small function.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping

from harness.intervene.kinds import COMPONENTS, KINDS, POSITIONS

# A claim id is a key of the expectations file (`C3 = {...}` in [minilm]) and a part of test ids: letters, digits,
# '-', '_' and '.', starting with a letter (harness.judge.expectations reads the same pattern).
CLAIM_ID = re.compile(r"[A-Za-z][\w.-]*")
# Keys of a model's expectations section that name a sub-section, not a claim: another layer's, another
# intervention's (or its positions' or component's); an id spelled so would be read back as a section.
_LAYER_KEY = re.compile(r"layer-\d+")
DTYPES = ("float32", "bfloat16", "float16", "float64")  # the keys a per-dtype threshold may have


def field_problems(claim: object) -> list[str]:
    """Every field of `claim` whose form cannot be judged, one line each (empty when all can)."""
    return [*id_problems(claim), *threshold_problems(claim), *statistic_of_problems(claim)]


def named(claim: object) -> str:
    return f"claim {getattr(claim, 'id', None)!r} ({getattr(claim, 'defined_in', '') or 'defined here'})"


def id_problems(claim: object) -> list[str]:
    cid = getattr(claim, "id", None)
    if not isinstance(cid, str) or not CLAIM_ID.fullmatch(cid):
        return [
            f"claim id {cid!r} ({getattr(claim, 'defined_in', '')}) is not a valid id: the expectations file keys claims by id, "
            "so write letters, digits, '-', '_' or '.', starting with a letter (e.g. 'my-claim-1')"
        ]
    reserved = (*KINDS, *POSITIONS, *COMPONENTS)
    if cid in reserved or _LAYER_KEY.fullmatch(cid):
        what = "a layer's" if _LAYER_KEY.fullmatch(cid) else "an intervention's (its kind, positions or component)"
        return [
            f"claim id {cid!r} ({getattr(claim, 'defined_in', '')}) is the name of {what} sub-section of the expectations file "
            f"([model.{cid}]), so its entry would be read back as a section: give the claim another id (e.g. 'my-{cid}')"
        ]
    return []


def threshold_problems(claim: object) -> list[str]:
    """thresholds: a mapping name -> Threshold, each value a finite number or {dtype: finite number}; 'within': low < high."""
    from harness.judge.claim import Threshold  # the record's own class (claim.py imports this module: a call-time import)

    name, thresholds = named(claim), getattr(claim, "thresholds", None)
    if not isinstance(thresholds, Mapping):
        return [
            f"{name}: thresholds is {_shown(thresholds)}, a {type(thresholds).__name__}: write a dict of name -> Threshold, "
            "e.g. thresholds={'T': Threshold(0.1, 'why this value')}"
        ]
    out = []
    for key, threshold in thresholds.items():
        if not isinstance(threshold, Threshold):
            out.append(
                f"{name}: thresholds[{key!r}] is {_shown(threshold)}, a {type(threshold).__name__}: write "
                f"thresholds={{{key!r}: Threshold({_shown(threshold)}, 'why this value')}}"
            )
            continue
        out += _value_problems(name, key, threshold.value)
        if not isinstance(threshold.reason, str) or not threshold.reason.strip():
            out.append(f"{name}: thresholds[{key!r}] gives no reason: write Threshold({_shown(threshold.value)}, 'why this value')")
    if not out and getattr(claim, "needs", None) == "within" and len(thresholds) == 2:
        out += _within_problems(name, list(thresholds.items()))
    return out


def statistic_of_problems(claim: object) -> list[str]:
    statistic_of = getattr(claim, "statistic_of", None)
    if statistic_of is not None and not callable(statistic_of):
        return [
            f"{named(claim)}: statistic_of is {_shown(statistic_of)}, a {type(statistic_of).__name__}: give a function of a View "
            "returning the statistic, e.g. statistic_of=lambda v: v.delta[..., -1] / v.delta[..., v.site(f'block.{v.layer}')]"
        ]
    judge = getattr(claim, "judge", None)
    if judge is not None and not callable(judge):
        return [f"{named(claim)}: judge is {_shown(judge)}, a {type(judge).__name__}: give a function judge(measured, run) -> Verdict"]
    return []


def threshold_value(claim: object, key: str, value: float | Mapping[str, float], dtype: str) -> float:
    """A threshold's number at the run's resolved dtype; a per-dtype threshold without that dtype is a ClaimError."""
    from harness.judge.claim import ClaimError

    if not isinstance(value, Mapping):
        return float(value)
    if dtype not in value:
        raise ClaimError(
            f"{named(claim)}: thresholds[{key!r}] gives values for {', '.join(value)} only, and this run is {dtype}: "
            f"add a {dtype!r} entry to its Threshold"
        )
    return float(value[dtype])


# ---------------------------------------------------------------------------------------------


def _value_problems(name: str, key: str, value: object) -> list[str]:
    form = "a finite number, or one per dtype ({'float32': 1e-4, 'bfloat16': 1e-2})"
    if isinstance(value, Mapping):
        unknown = [d for d in value if d not in DTYPES]
        if unknown or not value:
            return [
                f"{name}: thresholds[{key!r}] is keyed by {', '.join(map(repr, unknown)) or 'nothing'}: "
                f"key it by dtype, one of {', '.join(DTYPES)}"
            ]
        bad = {d: v for d, v in value.items() if not _finite(v)}
        return [f"{name}: thresholds[{key!r}]'s {next(iter(bad))} value {next(iter(bad.values()))!r} is not {form}"] if bad else []
    return [] if _finite(value) else [f"{name}: thresholds[{key!r}] = {value!r} is not {form}"]


def _within_problems(name: str, items: list) -> list[str]:
    (low_key, low), (high_key, high) = items
    for dtype in _dtypes(low.value, high.value):
        a, b = _at(low.value, dtype), _at(high.value, dtype)
        if a is not None and b is not None and not a < b:
            at = f" in {dtype}" if dtype else ""
            return [
                f"{name}: needs='within' reads thresholds as (low, high], and {low_key} = {a:g} is not below {high_key} = {b:g}{at}, "
                "so the claim could never hold: list the lower bound first"
            ]
    return []


def _dtypes(*values: object) -> list[str | None]:
    keyed = [set(v) for v in values if isinstance(v, Mapping)]
    return sorted(set.union(*keyed)) if keyed else [None]


def _at(value: object, dtype: str | None) -> float | None:
    if isinstance(value, Mapping):
        return float(value[dtype]) if dtype in value else None
    return float(value)  # type: ignore[arg-type]


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _shown(value: object) -> str:
    text = value.__name__ if isinstance(value, Callable) and hasattr(value, "__name__") else repr(value)  # type: ignore[arg-type]
    return text if len(text) <= 60 else text[:57] + "..."
