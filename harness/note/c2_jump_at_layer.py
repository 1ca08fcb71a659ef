"""C2 (§3.1): at the scaled block Δ jumps from about zero to a large value.

Factors within FACTOR_BAND of 1 are left out of the drawn ones: the claim is about a visible change.
"""

from __future__ import annotations

import numpy as np

from harness.judge.claim import Claim
from harness.judge.verdict import Verdict, aggregate_of, finite, judge_rule, ratio
from harness.measure.record import Profile
from harness.note.spans import sites_before
from harness.note.thresholds import JUMP_OVER_NOISE, JUMP_RELATIVE, named


def judge_c2(prof: Profile, factor_index: int = 0, *, seed: int = 0) -> Verdict:
    at = prof.site(f"block.{prof.layer}")
    before = sites_before(prof)
    noise = float(prof.delta[factor_index, before].max()) if before else 0.0
    jump = float(prof.delta[factor_index, at]) / noise if noise > 0 else float("inf")

    def statistic(d: np.ndarray, c: np.ndarray, a: np.ndarray) -> np.ndarray:  # relative Δ at L
        return ratio(d[..., at], c[..., at])

    def rule(d: np.ndarray, c: np.ndarray, a: np.ndarray) -> bool:
        return bool(statistic(d, c, a) >= JUMP_RELATIVE and d[at] >= JUMP_OVER_NOISE * (d[before].max() if before else 0.0))

    rel_at = float(statistic(*aggregate_of(prof, factor_index)))
    return judge_rule(
        "C2",
        prof,
        factor_index,
        rule,
        statistic,
        threshold=JUMP_RELATIVE,
        seed=seed,
        margin=rel_at - JUMP_RELATIVE,
        margin_text=f"relative Δ at block {prof.layer} = {rel_at:.4g} (needs ≥ {JUMP_RELATIVE:g}); jump over noise = {jump:.3g}",
        reason=f"Δ at block {prof.layer} is {rel_at:.1%} of the clean norm; "
        + ("nothing moved before it" if noise == 0 else f"{jump:.3g}× the largest Δ before it"),
        evidence={
            "relative_delta_at_layer": rel_at,
            "delta_at_layer": float(prof.delta[factor_index, at]),
            "jump_over_noise": finite(jump),
        },
    )


C2 = Claim(
    "C2",
    "A jump at the scaled block",
    "At the scaled block Δ jumps from about zero to a large value.",
    section="§3.1",
    test="Relative Δ at block L ≥ JUMP_RELATIVE and Δ(block L) ≥ JUMP_OVER_NOISE × the largest Δ before it.",
    empirical=False,
    statistic="relative Δ at block L",
    needs=">=",
    thresholds=named("JUMP_RELATIVE", "JUMP_OVER_NOISE"),
    judge=lambda prof, run: judge_c2(prof, seed=run.seed),
    figure="near_layer",
    layer_map=True,
    intervention_map=True,
    under={
        "scale": "relative Δ at block L is exactly |1 − s|, at least FACTOR_BAND = 0.1 for every factor judged, so it clears "
        "JUMP_RELATIVE by construction: a failure is a hook that missed",
        "scale-update": "relative Δ at block L is |1 − s|·‖H_L − H_in‖/‖H_L‖: block L's own update against the stream it "
        "writes to, so the rule asks whether that update is at least JUMP_RELATIVE/|1 − s| of the stream: empirical "
        "(a block that writes little fails it)",
        "noise": "relative Δ at block L is exactly s, in [1/3, 1] for the note's factors, above JUMP_RELATIVE by construction",
        "add": "relative Δ at block L is |s|·‖v‖·√(tokens)/‖H_L‖: whether the direction is large against the stream; "
        "it depends on v's norm, not on the model",
        "mean-ablate": "relative Δ at block L is s·‖H_L − μ‖/‖H_L‖: how far the tokens lie from their clean mean, against "
        "their norm; empirical (tokens that barely differ fail it)",
    },
    not_under={
        "positions=first": "Δ leaves out each prompt's first token, the only one edited: Δ at block L is 0 by construction",
    },
)
