"""Bootstrap over prompts: how far a claim's statistic moves when the corpus is drawn again.

    interval = prompt_bootstrap(statistic, [delta_sp, clean_sp], seed=0)   # each part (S, P): per prompt
    interval.low, interval.high       # 95 % percentile interval of statistic over resampled corpora
    interval.distribution             # (B,) the statistic on each resampled corpus

A resampled corpus draws P prompts from the P measured ones with replacement, so prompt p enters it
w_p times (w: multinomial counts summing to P). Δ over a corpus is a Frobenius norm over its
prompts' tokens, so the resampled aggregate of every per-prompt part x (S, P) is

    x_agg[b, s] = sqrt(Σ_p w[b, p] · x[s, p]²)       one (B, P) × (P, S) contraction for all resamples,

which is exactly the aggregate of the corpus with prompt p written w_p times. `statistic` receives
these aggregates, one (B, S) array per part, and returns (B,) values.

Method: percentile interval, the α/2 and 1 − α/2 quantiles of the resampled statistic (linear
interpolation, as numpy's and scipy's quantile default). Chosen over BCa because the claims'
statistics include a minimum over sites (C3), a median over sites (C5) and values that do not vary
at all across prompts (C1's exact zeros, C2's exact |1 − s|): BCa's bias correction is undefined on
such degenerate distributions (scipy warns and returns NaN), while the percentile interval collapses
to the point, which is the truth there. Indices are drawn exactly as `scipy.stats.bootstrap` draws
them, `rng.integers(0, P, (B, P))` with `rng = numpy.random.default_rng(seed)`, so for one seed the
two give the same resamples and the same interval (tests/test_bootstrap.py checks both that and
the agreement within sampling error under independent draws).

Pure numpy: no torch, so the report and tests can use it without a model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000  # ≥ 1000 (issue 11); the 2.5 % quantile then has a Monte-Carlo error of ≈ 0.06 bootstrap SE
CONFIDENCE = 0.95

Statistic = Callable[..., np.ndarray]  # statistic(*parts_agg) with each part (B, S) -> (B,)


@dataclass(frozen=True)
class Interval:
    """A percentile bootstrap interval and the resampled statistic it came from."""

    low: float
    high: float
    distribution: np.ndarray  # (B,) statistic per resampled corpus; NaN where it is undefined
    seed: int
    resamples: int
    confidence: float = CONFIDENCE
    method: str = "percentile"

    def contains(self, value: float) -> bool:
        return bool(self.low <= value <= self.high)

    def describe(self) -> dict[str, object]:
        """JSON-ready: how the interval was made, for a verdict's evidence."""
        return {
            "method": self.method,
            "resamples": self.resamples,
            "seed": self.seed,
            "confidence": self.confidence,
            "resampled": "prompts",
            "undefined_resamples": int(np.sum(~np.isfinite(self.distribution))),
        }


def resample_counts(n_prompts: int, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """(B, P) int: how often each prompt enters each resampled corpus; every row sums to P.

    Drawn as scipy.stats.bootstrap draws its indices, so both see the same corpora for one seed.
    """
    if n_prompts < 1:
        raise ValueError(f"cannot resample {n_prompts} prompts: the bootstrap needs at least one prompt.")
    if resamples < 1:
        raise ValueError(f"resamples = {resamples}: give a positive count (at least 1000 for a 95 % interval).")
    rng = np.random.default_rng(seed)
    index = rng.integers(0, n_prompts, (resamples, n_prompts))  # (B, P) prompt drawn at each slot
    flat = index + n_prompts * np.arange(resamples)[:, None]  # one bin range per resample
    return np.bincount(flat.ravel(), minlength=resamples * n_prompts).reshape(resamples, n_prompts)


def frobenius_aggregate(part: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(B, S): sqrt(Σ_p counts[b, p] · part[s, p]²), the Frobenius aggregate of each resampled corpus.

    part: (S, P) per-prompt norms (Δ or ‖H_clean‖ over each prompt's tokens); counts: (B, P).
    """
    part = np.asarray(part, dtype=np.float64)
    # einsum without `optimize` sums in its own loops, not BLAS: one summation order whatever the
    # thread count or CPU kernel, so one seed gives a bit-identical interval on every run.
    return np.sqrt(np.einsum("bp,sp->bs", counts.astype(np.float64), np.square(part)))


def prompt_bootstrap(
    statistic: Statistic,
    parts: Sequence[np.ndarray],
    *,
    seed: int = 0,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
) -> Interval:
    """Percentile interval of `statistic` over corpora resampled by prompt (see the module docstring).

    parts: per-prompt norms, each (S, P) with the same P; `statistic(*aggregates)` gets one (B, S)
    array per part and returns (B,). Resamples where the statistic is NaN (undefined) are left out
    of the quantiles and counted in `describe()`; ±inf stays in (it is an order statistic like any).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence = {confidence}: give a level strictly between 0 and 1, such as 0.95.")
    shapes = {np.shape(p) for p in parts}
    if not parts or len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"parts must be (S, P) arrays of one shape; got shapes {sorted(shapes)}.")
    counts = resample_counts(np.shape(parts[0])[1], resamples, seed)
    values = np.asarray(statistic(*(frobenius_aggregate(p, counts) for p in parts)), dtype=np.float64)
    if values.shape != (resamples,):
        raise ValueError(f"statistic returned shape {values.shape}; it must reduce each (B, S) aggregate to ({resamples},).")
    low, high = percentile_interval(values, confidence)
    return Interval(low, high, values, seed, resamples, confidence)


def percentile_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The (1 − confidence)/2 and (1 + confidence)/2 quantiles of `values`, NaNs left out.

    Linear interpolation between order statistics (numpy's and scipy's default), written out so that
    an infinite neighbour gives ±inf where numpy's interpolation gives NaN (inf − inf).
    """
    kept = np.sort(np.asarray(values, dtype=np.float64).ravel())
    kept = kept[~np.isnan(kept)]
    if kept.size == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - confidence) / 2.0
    return _quantile(kept, alpha), _quantile(kept, 1.0 - alpha)


def _quantile(ordered: np.ndarray, q: float) -> float:
    """Quantile q of sorted, NaN-free values by linear interpolation (numpy's method="linear")."""
    h = (ordered.size - 1) * q
    below = int(np.floor(h))
    above = min(below + 1, ordered.size - 1)
    a, b, t = float(ordered[below]), float(ordered[above]), h - below
    if t == 0 or a == b or np.isinf(a):
        return a
    if np.isinf(b):
        return b
    return a + (b - a) * t
