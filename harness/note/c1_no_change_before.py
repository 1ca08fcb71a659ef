"""C1 (§3.1): before the scaled block (embedding, blocks 0 … L−1) Δ is essentially zero.

Any factor qualifies, also near 1: nothing upstream may move whatever the scaling.
"""

from __future__ import annotations

import numpy as np

from harness.intervene.kinds import KINDS
from harness.judge.claim import Claim
from harness.judge.verdict import Verdict, aggregate_of, judge_rule, ratio
from harness.measure.record import Profile
from harness.note.spans import sites_before
from harness.note.thresholds import named, zero_relative


def judge_c1(prof: Profile, factor_index: int = 0, dtype: str = "float32", *, seed: int = 0) -> Verdict:
    before = sites_before(prof)
    rel = prof.relative_delta[factor_index, before]
    limit = zero_relative(dtype)

    def statistic(d: np.ndarray, c: np.ndarray, a: np.ndarray) -> np.ndarray:  # largest relative Δ before L
        rel = ratio(d[..., before], c[..., before])
        return rel.max(axis=-1) if before else np.zeros(rel.shape[:-1])

    def rule(d: np.ndarray, c: np.ndarray, a: np.ndarray) -> bool:
        return bool(statistic(d, c, a) <= limit)

    worst = float(statistic(*aggregate_of(prof, factor_index)))
    holds = rule(*aggregate_of(prof, factor_index))
    return judge_rule(
        "C1",
        prof,
        factor_index,
        rule,
        statistic,
        threshold=limit,
        seed=seed,
        margin=limit - worst,
        margin_text=f"largest relative Δ before block {prof.layer} = {worst:.3g} (limit {limit:g})",
        reason=("nothing before the scaled block moved" if holds else f"a site before block {prof.layer} moved by {worst:.3g}"),
        evidence={"sites": [prof.sites[i] for i in before], "relative_delta": rel.tolist()},
    )



C1 = Claim(
    "C1",
    "No change before the scaled block",
    "Before the scaled block (embedding, blocks 0 and 1 for the note's layer 2) Δ is essentially zero.",
    section="§3.1",
    test="Relative Δ ≤ ZERO_RELATIVE at every site before block L.",
    empirical=False,
    statistic="largest relative Δ before block L",
    needs="<=",
    thresholds=named("ZERO_RELATIVE"),
    judge=lambda prof, run: judge_c1(prof, dtype=run.dtype, seed=run.seed),
    keep_band=False,
    figure="near_layer",
    layer_map=True,
    intervention_map=True,
    under={
        kind: "the same for every kind, positions and component: the edit is made at block L, so no site before it can "
        "change; anything above the dtype's noise is a hook that leaked upstream"
        for kind in KINDS
    },
)
