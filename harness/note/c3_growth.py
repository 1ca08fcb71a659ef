"""C3 (§3.1, §4): from the scaled block on Δ keeps increasing, not linearly.

Not applicable at a layer within three blocks of the end: there is no growth left to judge.
Factors within FACTOR_BAND of 1 are left out of the drawn ones: the claim is about a visible change.
"""

from __future__ import annotations

import numpy as np

from harness.judge.claim import Claim
from harness.judge.verdict import Verdict, aggregate_of, finite_list, judge_rule
from harness.measure.record import Profile
from harness.note.spans import growth_span, nonlinearity, step_ratios
from harness.note.thresholds import GROWTH_STEP, NONLINEAR_MIN, named


def judge_c3(prof: Profile, factor_index: int = 0, *, seed: int = 0) -> Verdict:
    span = growth_span(prof)
    deltas = prof.delta[factor_index, span]
    steps = step_ratios(deltas)
    bend = nonlinearity(deltas)

    def statistic(d: np.ndarray, c: np.ndarray, a: np.ndarray) -> np.ndarray:  # smallest step ratio
        s = step_ratios(d[..., span])
        return s.min(axis=-1) if s.shape[-1] else np.full(s.shape[:-1], np.nan)

    def rule(d: np.ndarray, c: np.ndarray, a: np.ndarray) -> bool:
        return bool(statistic(d, c, a) > GROWTH_STEP and nonlinearity(d[span]) >= NONLINEAR_MIN)

    worst_step = float(statistic(*aggregate_of(prof, factor_index)))
    names = [prof.sites[i] for i in span]
    if not worst_step > GROWTH_STEP:
        k = int(np.argmin(steps)) if steps.size else 0
        reason = f"Δ falls from {names[k]} to {names[k + 1]} (×{worst_step:.3f})" if steps.size else "too few sites"
    elif bend < NONLINEAR_MIN:
        reason = f"Δ grows but along a straight line (departure {bend:.3f} of its range)"
    else:
        reason = f"Δ grows at every step from {names[0]} to {names[-1]}, bending by {bend:.1%} of its range"
    evidence: dict[str, object] = {
        "sites": names,
        "delta": deltas.tolist(),
        "relative_delta": prof.relative_delta[factor_index, span].tolist(),
        "step_ratio": finite_list(steps),
        "nonlinearity": bend,
    }
    if prof.prompt_delta is not None:
        evidence["prompt_nonlinearity"] = [nonlinearity(col) for col in prof.prompt_delta[factor_index][span].T]
    return judge_rule(
        "C3",
        prof,
        factor_index,
        rule,
        statistic,
        threshold=GROWTH_STEP,
        seed=seed,
        margin=worst_step - GROWTH_STEP,
        margin_text=f"smallest step ratio Δ(s+1)/Δ(s) = {worst_step:.4f} (needs > {GROWTH_STEP:g}); bend = {bend:.3f}",
        reason=reason,
        evidence=evidence,
    )



def growth_sites(subject: object, layer: int) -> str | None:
    """C3 is judged from block L to block N−2 (the site before the final one), its bend on at least three sites."""
    last = subject.n_blocks - 2
    if last - layer + 1 >= 3:
        return None
    if subject.n_blocks < 4:
        return (
            f"{subject.name} is too shallow for C3: it has {subject.n_blocks} block(s), and growth is judged on three sites "
            "from the scaled block to block N−2, which needs at least 4 blocks"
        )
    return (
        f"growth is judged on blocks {layer} to {last} (the site before the final one), {max(0, last - layer + 1)} site(s) "
        f"at this layer, and telling a curve from a line needs three: give a layer of at most {subject.n_blocks - 4}"
    )


C3 = Claim(
    "C3",
    "Growth after the scaled block",
    "From the block after the scaled one on, Δ keeps increasing, and not along a straight line: the later "
    "LayerNorms do not undo the scaling.",
    section="§3.1, §4",
    test="Δ(s+1)/Δ(s) > GROWTH_STEP for every step from block L to the last site before the final one, and the "
    "largest departure from the straight line through the end points ≥ NONLINEAR_MIN × the range.",
    empirical=True,
    statistic="smallest step ratio Δ(s+1)/Δ(s)",
    needs=">",
    thresholds=named("GROWTH_STEP", "NONLINEAR_MIN"),
    judge=lambda prof, run: judge_c3(prof, seed=run.seed),
    applies=growth_sites,
    layer_map=True,
    intervention_map=True,
    under={
        "scale": "the note's question (§1) as it asks it: does the scaled state's deviation grow through the later blocks, "
        "or do they heal it",
        "scale-update": "block L's update rescaled (s = 0.5: half of it removed; 1.5: amplified): growth means the later "
        "blocks amplify a partly skipped or overdone block instead of repairing it (self-repair, as after layer deletion)",
        "noise": "random unit directions scaled to each token's norm: growth means the later blocks amplify noise; a fall "
        "is the healing of §1",
        "add": "a fixed direction added to every edited token: growth means the steering signal grows with depth",
        "mean-ablate": "tokens pulled toward their clean mean: growth means the information removed is not restored",
    },
    not_under={
        "positions=first": "Δ leaves out the first token, the only one edited, so Δ at block L is 0 by construction and the "
        "first step ratio Δ(L+1)/Δ(L) is unbounded: growth from nothing is not a ratio",
    },
)
