"""How the report writes what it shows: numbers, a statistic with its interval and rule, a claim record's fields, item labels."""

from __future__ import annotations

import math

NEEDS = {"<=": "≤", ">=": "≥", ">": ">", "<": "<"}
# Each status's badge as (background, text, border), drawn with the class css_class(status). Judged statuses are
# solid; findings (measured, never failing) are pale with their verdict's colour, so they read apart from a judgement.


def fmt(value: object) -> str:
    """A number as the report prints it (the tests compare the HTML to the JSON through this)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {fmt(v)}" for k, v in value.items())
    return str(value)


def short(value: object, digits: int = 3) -> str:
    """A number to `digits` significant digits, for the verdict table (the exact value is in the JSON and the details)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return fmt(value)
    if value == 0 or not math.isfinite(value):
        return fmt(value)
    if abs(value) < 1e-3 or abs(value) >= 1e5:
        return f"{value:.{digits - 1}g}"
    return f"{value:#.{digits}g}".rstrip(".")


def statistic_text(name: str, statistic: object, ci95: object, threshold: object, needs: str, bounds: list | None = None) -> str:
    """'median ratio = 7.80 [6.90, 8.60]; needs ≥ 10': the statistic, its 95 % interval and the rule, in words.

    Digits: 3 significant, up to 5 where fewer would print different values of the statistic and its interval alike.
    """
    values = [statistic, *(ci95 if isinstance(ci95, list | tuple) and len(ci95) == 2 else [])]
    numeric = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    digits = next((d for d in (3, 4, 5) if len({short(v, d) for v in numeric}) == len(set(numeric))), 3)
    text = f"{name} = {short(statistic, digits)}" if name else short(statistic, digits)
    if len(values) == 3:
        text += f" [{short(values[1], digits)}, {short(values[2], digits)}]"
    if needs == "within" and bounds and len(bounds) == 2:
        low, high = sorted(bounds, key=lambda b: float(b) if isinstance(b, int | float) else 0.0)
        return text + f"; needs {_plain(low)} < x ≤ {_plain(high)}"
    if threshold is not None and needs:
        return text + f"; needs {NEEDS.get(needs, needs)} {_plain(threshold)}"
    return text


def _plain(value: object) -> str:
    """A threshold as written in harness/note/thresholds.py: 10, 0.05, 1e-05."""
    return f"{value:.3g}" if isinstance(value, float) else fmt(value)


def about(claim: dict, key: str) -> object:
    """A field of a claim's record as the document carries it; a document written before it did: the record known here."""
    if key in claim:
        return claim[key]
    from harness.judge.claim import CLAIMS
    from harness.note import NOTE_CLAIMS  # noqa: F401 - registers the note's claims

    known = CLAIMS.get(str(claim.get("claim")))
    return getattr(known, {"statistic_name": "statistic"}.get(key, key), "") if known is not None else ""


def rule_bounds(needs: str, thresholds: dict) -> list | None:
    """A "within" rule's two bounds (its first two thresholds, Claim.thresholds' order) when the evidence does not list them."""
    values = [v for name, v in thresholds.items() if name != "PROMPT_SHARE"]
    return values[:2] if needs == "within" and len(values) >= 2 else None


def item_label(item: dict) -> str:
    if item.get("source") == "hypothesis":
        label = "hypothesis"
    elif item.get("factor") is not None:
        label = f"factor {fmt(item['factor'])}"
    else:
        label = item.get("nodeid", "?").rsplit("::", 1)[-1]
    kind = item.get("intervention") or "scale"
    return label if kind == "scale" else f"{kind}, {label}"
