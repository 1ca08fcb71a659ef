"""The sites each of the note's rules reads: spans of a profile's site axis, and the pure helpers over them."""

from __future__ import annotations

import numpy as np

from harness.judge.verdict import ratio
from harness.measure.record import Profile


def final_readings(prof: Profile) -> dict[str, tuple[int, int]]:
    """The two readings of "the final block" (§3.3) as (final site, previous site) indices.

    note: the note's layer axis ends with HuggingFace's last hidden state, the final norm's output
          where there is one; the site before it on that axis is block N−2.
    raw:  the raw output of the last block against block N−2.
    """
    n = sum(1 for s in prof.sites if s.startswith("block."))
    last, before_last = prof.site(f"block.{n - 1}"), prof.site(f"block.{n - 2}")
    readings = {"raw": (last, before_last)}
    readings["note"] = (prof.site("final_norm"), before_last) if "final_norm" in prof.sites else (last, before_last)
    return readings


# ---------------------------------------------------------------------------------------------


def sites_before(prof: Profile) -> list[int]:
    return list(range(prof.site(f"block.{prof.layer}")))


def growth_span(prof: Profile) -> list[int]:
    """Block L up to the last site before the note's final one (block N−2)."""
    _, previous = final_readings(prof)["note"]
    return list(range(prof.site(f"block.{prof.layer}"), previous + 1))


def first_token_span(prof: Profile) -> list[int]:
    """Block L up to the last block (a one-block model has no block N−2, which final_readings needs)."""
    n = sum(1 for s in prof.sites if s.startswith("block."))
    return list(range(prof.site(f"block.{prof.layer}"), prof.site(f"block.{n - 1}") + 1))


def step_ratios(values: np.ndarray) -> np.ndarray:
    """(..., n − 1) ratios of consecutive values along the last axis."""
    return ratio(values[..., 1:], values[..., :-1])


def nonlinearity(values: np.ndarray) -> float:
    """Largest distance of `values` from the straight line through its end points, over its range."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 3:
        return 0.0
    line = np.linspace(values[0], values[-1], values.size)
    spread = float(values.max() - values.min())
    return float(np.abs(values - line).max() / spread) if spread > 0 else 0.0


def drop_between(deltas: np.ndarray, final: int, previous: int) -> float:
    return float(1.0 - ratio(deltas[final], deltas[previous]))

