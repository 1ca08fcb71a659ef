"""Judgements: the note's claims as pure functions of a profile, each returning a Verdict.

    prof = profile(subject, prompts, layer=2, factors=[0.5], per_prompt=True)
    verdict = judge_c3(prof, factor_index=0)
    verdict.verdict      # "holds" or "refuted"
    verdict.margin       # > 0: held with that much room; < 0: refuted by that much (units in margin_text)
    verdict.evidence     # the numbers the verdict rests on, JSON-ready
    verdict.statistic, verdict.threshold   # the number the rule compares, and what it is compared to
    verdict.ci95         # 95 % percentile bootstrap interval of the statistic over prompts (seed=...)
    verdict.fragile      # True when that interval contains the threshold; None without per-prompt data

Thresholds, and why (also in README, "How the claims are judged"):

ZERO_RELATIVE = 1e-5 (float32; 1e-2 for bf16/fp16)
    "Δ ≈ 0" (§3.1): relative Δ = Δ / ‖H_clean‖ at or below floating-point noise. A correct hook
    changes nothing before the scaled block, so anything larger is a leak, not noise.
JUMP_RELATIVE = 0.05
    "Δ jumps at layer 2" (§3.1): relative Δ at the scaled block is at least 5 % of the clean norm,
    and at least JUMP_OVER_NOISE = 1000 times the largest Δ before it. Scaling by s gives exactly
    |1 − s| there, so every factor outside the band |1 − s| < FACTOR_BAND = 0.1 clears it.
GROWTH_STEP = 1.0
    "Δ keeps increasing from layer 3 on" (§3.1, §4): every step from the scaled block to the last
    site of the note's axis before the final one multiplies Δ by more than 1 (strictly increases).
NONLINEAR_MIN = 0.02
    "non-linearly" (§3.1): Δ over depth departs from the straight line through its end points by
    at least 2 % of its range somewhere. Exactly linear growth would not count.
SLIGHT_DROP_MAX = 0.5, DROP_MIN = 1e-3
    "a slight drop at the final block" (§3.3): Δ at the final site falls below Δ at the site
    before it by more than 0.1 % (above numerical noise) and by at most half; a larger fall would
    be the healing that §3.1 says does not happen.
FIRST_TOKEN_RATIO = 10
    "an order of magnitude" (§3.2): Δ with the first token / Δ without it ≥ 10, taken as the
    median over the sites from the scaled block to the last block.
INVARIANT_SHARE = 0.05
    C0's "every later site moves" (§1) cannot hold where a site is a scale-invariant function of the
    scaled state: with the last block scaled, the final norm sees exactly s·h, and LayerNorm and
    RMSNorm give N_ε(s·h) = N_{ε/s²}(h): the scaling reaches their output only through ε. Relative to
    the scaling itself that is a share of at most ε(1 + s)/(2s²σ²) (σ² the state's per-dimension
    variance), 3ε/σ² at s = 0.5: below 5 % once σ² ≥ 60ε, and about 1e-7 on GPT-2's last block
    (norm ≈ 456 over 768 dimensions, σ² ≈ 270 against ε = 1e-5). Such a site is left out of "moves"
    and checked for the invariance instead: its relative Δ may be at most INVARIANT_SHARE of the
    relative Δ at the scaled block. A hook that moved the norm's output itself gives a share of 1.
PROMPT_SHARE = 0.75
    A claim on a corpus holds when it holds on the aggregate Δ (Frobenius over every prompt's
    tokens) and, judged prompt by prompt, on at least three quarters of the prompts.
KL_MATERIAL = 0.1 (nats per token), TOP1_MAX = 0.9
    "the model is very sensitive to an early scaling" (§4; C6, derived from the conclusion): for a
    factor s in [0.5, 1.5] with |1 − s| ≥ FACTOR_BAND, the mean KL(p_clean ‖ p_scaled) over the
    counted positions is at least 0.1 nats AND at most 90 % of the next-token argmaxes are unchanged.
    KL is the extra loss per token the scaled model pays on text drawn from the clean model's own
    predictions; 0.1 nats is over a third of the ~0.27 nats/token between GPT-2 small (3.11) and
    GPT-2 medium (2.84) on OpenWebText (nanoGPT's baselines of the OpenAI checkpoints), so less than
    that would not be "very sensitive". It is far above rounding: float32 batching moves the KL by
    ~1e-7 of itself, bf16 logits by an estimated 1e-4..1e-3 nats. The argmax test asks that
    decisions change, not only probabilities: one changed greedy choice in ten makes a 20-token
    greedy continuation differ with probability 1 − 0.9^20 ≈ 88 %. Neither test alone suffices: a
    flat distribution (random weights: top-1 agreement ~0.5 at a KL of only ~0.03 nats at s = 0.5)
    flips its argmax on noise, and a peaked one can move its probabilities without changing a choice.
    The KL is the statistic (its interval resamples prompts, weighting each by its positions); the
    top-1 agreement is reported beside it. Not applicable without trained weights or an LM head.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from harness.intervene.kinds import InterventionSpec
from harness.judge.bootstrap import RESAMPLES, Interval, percentile_interval, prompt_bootstrap, resample_counts
from harness.measure.record import Profile

HOLDS, REFUTED, NOT_APPLICABLE = "holds", "refuted", "not-applicable"
VERDICTS = (HOLDS, REFUTED, NOT_APPLICABLE)

ZERO_RELATIVE = {"float32": 1e-5, "bfloat16": 1e-2, "float16": 1e-2}
JUMP_RELATIVE = 0.05
JUMP_OVER_NOISE = 1e3
FACTOR_BAND = 0.1
GROWTH_STEP = 1.0
NONLINEAR_MIN = 0.02
SLIGHT_DROP_MAX = 0.5
DROP_MIN = 1e-3
FIRST_TOKEN_RATIO = 10.0
INVARIANT_SHARE = 0.05
PROMPT_SHARE = 0.75
KL_MATERIAL = 0.1
TOP1_MAX = 0.9

THRESHOLDS = {
    "ZERO_RELATIVE": ZERO_RELATIVE,
    "JUMP_RELATIVE": JUMP_RELATIVE,
    "JUMP_OVER_NOISE": JUMP_OVER_NOISE,
    "FACTOR_BAND": FACTOR_BAND,
    "GROWTH_STEP": GROWTH_STEP,
    "NONLINEAR_MIN": NONLINEAR_MIN,
    "SLIGHT_DROP_MAX": SLIGHT_DROP_MAX,
    "DROP_MIN": DROP_MIN,
    "FIRST_TOKEN_RATIO": FIRST_TOKEN_RATIO,
    "INVARIANT_SHARE": INVARIANT_SHARE,
    "PROMPT_SHARE": PROMPT_SHARE,
    "KL_MATERIAL": KL_MATERIAL,
    "TOP1_MAX": TOP1_MAX,
}


@dataclass(frozen=True)
class Claim:
    id: str
    section: str
    title: str
    statement: str  # the claim in our words
    test: str  # how it is judged, thresholds named
    empirical: bool  # depends on trained weights (not applicable to random-gpt2)
    statistic: str = ""  # the number its rule compares (Verdict.statistic), in words
    needs: str = ""  # how the statistic must compare with Verdict.threshold: "<=", ">=", ">" or "within" (C4's two bounds)
    derived: str = ""  # where a claim the note does not state in so many words comes from; "" for the note's own


CLAIMS: dict[str, Claim] = {
    c.id: c
    for c in (
        Claim(
            "C0",
            "§1",
            "Causality across depth",
            "Scaling the output of block n changes every later site and leaves every earlier site untouched.",
            "For every block n: relative Δ ≤ ZERO_RELATIVE at every site before block n and > ZERO_RELATIVE at block n and "
            "after, except at a site that is scale-invariant in the scaled state (the final norm after the last block), "
            "whose relative Δ must be ≤ INVARIANT_SHARE × the relative Δ at block n.",
            empirical=False,
            statistic="relative Δ nearest its limit (before: largest; at or after: smallest)",
            needs="<=",
        ),
        Claim(
            "C1",
            "§3.1",
            "No change before the scaled block",
            "Before the scaled block (embedding, blocks 0 and 1 for the note's layer 2) Δ is essentially zero.",
            "Relative Δ ≤ ZERO_RELATIVE at every site before block L.",
            empirical=False,
            statistic="largest relative Δ before block L",
            needs="<=",
        ),
        Claim(
            "C2",
            "§3.1",
            "A jump at the scaled block",
            "At the scaled block Δ jumps from about zero to a large value.",
            "Relative Δ at block L ≥ JUMP_RELATIVE and Δ(block L) ≥ JUMP_OVER_NOISE × the largest Δ before it.",
            empirical=False,
            statistic="relative Δ at block L",
            needs=">=",
        ),
        Claim(
            "C3",
            "§3.1, §4",
            "Growth after the scaled block",
            "From the block after the scaled one on, Δ keeps increasing, and not along a straight line: the later "
            "LayerNorms do not undo the scaling.",
            "Δ(s+1)/Δ(s) > GROWTH_STEP for every step from block L to the last site before the final one, and the "
            "largest departure from the straight line through the end points ≥ NONLINEAR_MIN × the range.",
            empirical=True,
            statistic="smallest step ratio Δ(s+1)/Δ(s)",
            needs=">",
        ),
        Claim(
            "C4",
            "§3.3, §4",
            "A slight drop at the final block",
            "At the last site before the unembedding, Δ is slightly lower than one site earlier, for every factor from 0.5 to 1.5.",
            "DROP_MIN < 1 − Δ(final)/Δ(previous) ≤ SLIGHT_DROP_MAX, with final = the final norm's output "
            "(HuggingFace's last hidden state); the raw last block is reported beside it.",
            empirical=True,
            statistic="drop 1 − Δ(final)/Δ(previous)",
            needs="within",
        ),
        Claim(
            "C5",
            "§3.2",
            "The first token dominates Δ",
            "Counting the first token makes Δ about ten times larger, because its activations are very large.",
            "Median over blocks L…N−1 of Δ(with first token)/Δ(without) ≥ FIRST_TOKEN_RATIO.",
            empirical=True,
            statistic="median ratio Δ(with first token)/Δ(without)",
            needs=">=",
        ),
        Claim(
            "C6",
            "§4",
            "Predictions change materially",
            "Scaling block L's output by any factor in the note's range at least FACTOR_BAND away from 1 changes the "
            "model's next-token predictions materially: the drift reaches the output.",
            "Mean KL(p_clean ‖ p_scaled) ≥ KL_MATERIAL nats and top-1 agreement ≤ TOP1_MAX over the counted "
            "positions, on the aggregate and on at least PROMPT_SHARE of the prompts.",
            empirical=True,
            statistic="mean KL(p_clean ‖ p_scaled) per position, nats (top-1 agreement beside it)",
            needs=">=",
            derived="derived from the conclusion (§4): the note measures hidden states only",
        ),
    )
}


@dataclass(frozen=True)
class Verdict:
    claim: str
    verdict: str  # one of VERDICTS
    margin: float  # signed distance to the threshold, > 0 when the test passes
    margin_text: str  # what the margin measures, with the numbers
    reason: str  # one line: why this verdict
    evidence: dict[str, object] = field(default_factory=dict)  # JSON-ready numbers
    # how sure the verdict is (issue 11): the number the rule compares, its threshold, a 95 % bootstrap
    # interval of it over prompts, and whether that interval crosses the threshold. None: not measured.
    statistic: float | None = None
    threshold: float | None = None
    ci95: tuple[float, float] | None = None
    fragile: bool | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "claim": self.claim,
            "verdict": self.verdict,
            "margin": _finite(self.margin),
            "margin_text": self.margin_text,
            "reason": self.reason,
            "evidence": self.evidence,
            "statistic": _finite(self.statistic),
            "threshold": _finite(self.threshold),
            "ci95": None if self.ci95 is None else [_finite(v) for v in self.ci95],
            "fragile": self.fragile,
        }


# ---------------------------------------------------------------------------------------------
# Per-claim judgements. Each takes a profile (per_prompt=True for the prompt share and the interval)
# and the index of the factor to judge, and looks only at numbers inside the profile. Each states its
# claim once, as a `rule(delta, clean_norm, delta_all_tokens) -> bool` over the sites, and applies
# that same rule to the corpus aggregate and to every prompt. The number a rule compares is one
# vectorised `statistic(delta, clean_norm, delta_all_tokens)` over arrays (..., S) -> (...): the same
# function gives the verdict's statistic (on the aggregate), each prompt's value (on (P, S)) and the
# bootstrap distribution (on (B, S) resampled aggregates, harness/judge/bootstrap.py).

Rule = Callable[[np.ndarray, np.ndarray, np.ndarray], bool]
Statistic = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def judge_c1(prof: Profile, factor_index: int = 0, dtype: str = "float32", *, seed: int = 0) -> Verdict:
    before = _sites_before(prof)
    rel = prof.relative_delta[factor_index, before]
    limit = zero_relative(dtype)

    def statistic(d: np.ndarray, c: np.ndarray, a: np.ndarray) -> np.ndarray:  # largest relative Δ before L
        rel = _ratio(d[..., before], c[..., before])
        return rel.max(axis=-1) if before else np.zeros(rel.shape[:-1])

    def rule(d: np.ndarray, c: np.ndarray, a: np.ndarray) -> bool:
        return bool(statistic(d, c, a) <= limit)

    worst = float(statistic(*_aggregate(prof, factor_index)))
    holds = rule(*_aggregate(prof, factor_index))
    return _verdict(
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


def judge_c2(prof: Profile, factor_index: int = 0, *, seed: int = 0) -> Verdict:
    at = prof.site(f"block.{prof.layer}")
    before = _sites_before(prof)
    noise = float(prof.delta[factor_index, before].max()) if before else 0.0
    jump = float(prof.delta[factor_index, at]) / noise if noise > 0 else float("inf")

    def statistic(d: np.ndarray, c: np.ndarray, a: np.ndarray) -> np.ndarray:  # relative Δ at L
        return _ratio(d[..., at], c[..., at])

    def rule(d: np.ndarray, c: np.ndarray, a: np.ndarray) -> bool:
        return bool(statistic(d, c, a) >= JUMP_RELATIVE and d[at] >= JUMP_OVER_NOISE * (d[before].max() if before else 0.0))

    rel_at = float(statistic(*_aggregate(prof, factor_index)))
    return _verdict(
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
            "jump_over_noise": _finite(jump),
        },
    )


def judge_c3(prof: Profile, factor_index: int = 0, *, seed: int = 0) -> Verdict:
    span = _growth_span(prof)
    deltas = prof.delta[factor_index, span]
    steps = _steps(deltas)
    bend = _nonlinearity(deltas)

    def statistic(d: np.ndarray, c: np.ndarray, a: np.ndarray) -> np.ndarray:  # smallest step ratio
        s = _steps(d[..., span])
        return s.min(axis=-1) if s.shape[-1] else np.full(s.shape[:-1], np.nan)

    def rule(d: np.ndarray, c: np.ndarray, a: np.ndarray) -> bool:
        return bool(statistic(d, c, a) > GROWTH_STEP and _nonlinearity(d[span]) >= NONLINEAR_MIN)

    worst_step = float(statistic(*_aggregate(prof, factor_index)))
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
        "step_ratio": _finite_list(steps),
        "nonlinearity": bend,
    }
    if prof.prompt_delta is not None:
        evidence["prompt_nonlinearity"] = [_nonlinearity(col) for col in prof.prompt_delta[factor_index][span].T]
    return _verdict(
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


def judge_c4(prof: Profile, factor_index: int = 0, *, seed: int = 0) -> Verdict:
    readings = final_readings(prof)
    final, previous = readings["note"]

    def statistic(d: np.ndarray, c: np.ndarray, a: np.ndarray) -> np.ndarray:  # the drop 1 − Δ(final)/Δ(previous)
        return 1.0 - _ratio(d[..., final], d[..., previous])

    def rule(d: np.ndarray, c: np.ndarray, a: np.ndarray) -> bool:
        return bool(DROP_MIN < statistic(d, c, a) <= SLIGHT_DROP_MAX)

    drop = float(statistic(*_aggregate(prof, factor_index)))
    other = {
        name: {"final": prof.sites[f], "previous": prof.sites[p], "drop": _drop(prof.delta[factor_index], f, p)}
        for name, (f, p) in readings.items()
    }
    word = "drops" if drop > 0 else "rises"
    return _verdict(
        "C4",
        prof,
        factor_index,
        rule,
        statistic,
        threshold=(DROP_MIN, SLIGHT_DROP_MAX),
        seed=seed,
        margin=min(drop - DROP_MIN, SLIGHT_DROP_MAX - drop),
        margin_text=f"drop 1 − Δ({prof.sites[final]})/Δ({prof.sites[previous]}) = {drop:+.4f} "
        f"(needs {DROP_MIN:g} < drop ≤ {SLIGHT_DROP_MAX:g})",
        reason=f"Δ {word} by {abs(drop):.1%} from {prof.sites[previous]} to {prof.sites[final]}",
        evidence={"readings": other, "delta": prof.delta[factor_index].tolist(), "sites": list(prof.sites)},
    )


def judge_c5(prof: Profile, factor_index: int = 0, *, seed: int = 0) -> Verdict:
    span = _first_token_span(prof)
    ratios = _ratio(prof.delta_all_tokens[factor_index, span], prof.delta[factor_index, span])

    def statistic(d: np.ndarray, c: np.ndarray, a: np.ndarray) -> np.ndarray:  # median ratio over blocks L…N−1
        return np.median(_ratio(a[..., span], d[..., span]), axis=-1)

    def rule(d: np.ndarray, c: np.ndarray, a: np.ndarray) -> bool:
        return bool(statistic(d, c, a) >= FIRST_TOKEN_RATIO)

    median = float(statistic(*_aggregate(prof, factor_index)))
    evidence: dict[str, object] = {"sites": [prof.sites[i] for i in span], "ratio": _finite_list(ratios), **first_token_curve(prof)}
    if prof.prompt_delta is not None:
        at = prof.site(f"block.{prof.layer}")
        measured = _ratio(prof.prompt_delta_all_tokens[factor_index][at], prof.prompt_delta[factor_index][at])  # (P,)
        evidence["prompt_ratio"] = _finite_list(statistic(*_per_prompt(prof, factor_index)))  # render.py reads this name
        evidence["prompt_ratio_at_layer"] = _finite_list(measured)  # what the predicted curve describes
    return _verdict(
        "C5",
        prof,
        factor_index,
        rule,
        statistic,
        threshold=FIRST_TOKEN_RATIO,
        seed=seed,
        margin=median - FIRST_TOKEN_RATIO,
        margin_text=f"median Δ(with first)/Δ(without) over blocks {prof.layer}… = {median:.3g} (needs ≥ {FIRST_TOKEN_RATIO:g})",
        reason=f"counting the first token multiplies Δ by {median:.3g} (median over sites)",
        evidence=evidence,
    )


JUDGES = {"C1": judge_c1, "C2": judge_c2, "C3": judge_c3, "C4": judge_c4, "C5": judge_c5}


def judge_c6(prof: Profile, factor_index: int = 0, *, seed: int = 0) -> Verdict:
    """C6 on a profile made with predictions=True: KL ≥ KL_MATERIAL and top-1 agreement ≤ TOP1_MAX.

    Not applicable when the profile carries no predictions (no LM head). The interval resamples
    prompts: a resampled corpus's KL is Σ_p w_p·kl_sum_p / Σ_p w_p·n_p (each prompt weighs by its
    positions, as in the aggregate), with w the bootstrap's multinomial counts.
    """
    if prof.kl is None or prof.top1_agreement is None:
        return Verdict("C6", NOT_APPLICABLE, 0.0, "", "no predictions in this profile: the subject has no LM head")
    kl, top1 = float(prof.kl[factor_index]), float(prof.top1_agreement[factor_index])
    nll = None if prof.nll_change is None else float(prof.nll_change[factor_index])
    aggregate = bool(kl >= KL_MATERIAL and top1 <= TOP1_MAX)
    evidence: dict[str, object] = {
        "factor": prof.factors[factor_index],
        "kl": _finite(kl),
        "top1_agreement": _finite(top1),
        "nll_change": _finite(nll),
        "include_first_token": prof.predictions_include_first,
        "aggregate_holds": aggregate,
    }
    share, interval = None, None
    if prof.prompt_kl is not None and prof.prompt_top1_agreement is not None and prof.prediction_positions is not None:
        per_kl, per_top1 = prof.prompt_kl[factor_index], prof.prompt_top1_agreement[factor_index]  # (P,)
        counted = prof.prediction_positions > 0  # a prompt with no counted position has no verdict of its own
        share = float(np.mean((per_kl[counted] >= KL_MATERIAL) & (per_top1[counted] <= TOP1_MAX))) if counted.any() else None
        interval = _kl_bootstrap(np.where(counted, per_kl, 0.0) * prof.prediction_positions, prof.prediction_positions, seed)
        evidence.update(
            prompt_lengths=list(prof.prompt_lengths),
            prompt_statistic=_finite_list(per_kl),
            prompt_top1_agreement=_finite_list(per_top1),
        )
    evidence.update(prompt_share=share, prompt_share_needed=PROMPT_SHARE)
    if kl < KL_MATERIAL:
        reason = f"the predictions barely move: KL {kl:.3g} nats per token (needs ≥ {KL_MATERIAL:g})"
    elif top1 > TOP1_MAX:
        reason = f"the distribution moves (KL {kl:.3g} nats) but {top1:.1%} of the top-1 predictions stay (needs ≤ {TOP1_MAX:.0%})"
    else:
        reason = f"KL {kl:.3g} nats per token and {1 - top1:.1%} of the top-1 predictions change"
    return _decided(
        "C6",
        aggregate,
        share,
        stat=kl,
        threshold=KL_MATERIAL,
        interval=interval,
        margin=min(kl - KL_MATERIAL, TOP1_MAX - top1),
        margin_text=f"KL = {kl:.4g} nats (needs ≥ {KL_MATERIAL:g}); top-1 agreement = {top1:.4f} (needs ≤ {TOP1_MAX:g}); "
        "margin = the smaller of KL − KL_MATERIAL and TOP1_MAX − top-1",
        reason=reason,
        evidence=evidence,
    )


def _kl_bootstrap(kl_sums: np.ndarray, positions: np.ndarray, seed: int) -> Interval:
    """Percentile interval of Σ w·kl_sum / Σ w·positions over prompt resamples (harness.judge.bootstrap's draws)."""
    counts = resample_counts(len(positions), RESAMPLES, seed).astype(np.float64)  # (B, P)
    with np.errstate(divide="ignore", invalid="ignore"):  # a resample of prompts without positions: NaN, left out
        values = np.einsum("bp,p->b", counts, kl_sums) / np.einsum("bp,p->b", counts, positions)
    low, high = percentile_interval(values)
    return Interval(low, high, values, seed, RESAMPLES)


def judge_c0(profiles: dict[int, Profile], factor_index: int = 0, dtype: str = "float32", *, seed: int = 0) -> Verdict:
    """C0 over one profile per intervention layer: untouched before, moved at and after.

    Sites that the scaling cannot move by construction (`invariant_sites`: the final norm when the
    last block is scaled) are left out of "moved" and must show the invariance instead: relative Δ
    at most INVARIANT_SHARE of the relative Δ at the scaled block; evidence["invariant_sites"] names
    them with their share and the reason. Its statistic is the side nearer its limit: the largest
    relative Δ before the scaled block, or the smallest at or after it over the sites that must move
    (evidence["statistic_is"] says which). With per-prompt data in every profile (the same prompts),
    the interval resamples prompts jointly across the layers.
    """
    limit = zero_relative(dtype)
    layers = sorted(profiles)
    matrix, failures, invariant = [], [], []
    ats, moving = [], []  # per layer: the scaled block's site index, and the indices of the sites that must move
    for layer in layers:
        prof = profiles[layer]
        rel = prof.relative_delta[factor_index]
        matrix.append(prof.delta[factor_index].tolist())
        at = prof.site(f"block.{layer}")
        exempt = invariant_sites(prof)
        must = [i for i in range(at, len(prof.sites)) if prof.sites[i] not in exempt]
        ats.append(at)
        moving.append(must)
        before = rel[:at]
        if before.size and before.max() > limit:
            failures.append(f"block {layer}: a site before it moved ({before.max():.3g})")
        if rel[must].min() <= limit:
            failures.append(f"block {layer}: {prof.sites[must[int(np.argmin(rel[must]))]]} did not move")
        for site, why in exempt.items():
            share = float(_ratio(rel[prof.site(site)], rel[at]))
            invariant.append({"layer": layer, "site": site, "relative_delta": _finite(rel[prof.site(site)]),
                              "share_of_scaling": _finite(share), "reason": why})
            if not share <= INVARIANT_SHARE:
                failures.append(
                    f"block {layer}: {site} moved by {share:.3g} of the scaling at block {layer}, "
                    f"but it is scale-invariant there (needs ≤ INVARIANT_SHARE = {INVARIANT_SHARE:g})"
                )

    def sides(*parts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(largest relative Δ before, smallest over the sites that must move) over layers; parts = Δ, ‖H‖ per layer, each (..., S)."""
        rels = [_ratio(d, c) for d, c in zip(parts[0::2], parts[1::2], strict=True)]
        before = np.max([r[..., :at].max(axis=-1) if at else np.zeros(r.shape[:-1]) for r, at in zip(rels, ats, strict=True)], axis=0)
        after = np.min([r[..., must].min(axis=-1) for r, must in zip(rels, moving, strict=True)], axis=0)
        return before, after

    aggregate = [x for layer in layers for x in (profiles[layer].delta[factor_index], profiles[layer].clean_norm)]
    worst_before, smallest_after = (float(x) for x in sides(*aggregate))
    use_before = limit - worst_before <= smallest_after - limit

    def statistic(*parts: np.ndarray) -> np.ndarray:
        return sides(*parts)[0 if use_before else 1]

    stat = worst_before if use_before else smallest_after
    interval = None
    if all(profiles[layer].prompt_delta is not None for layer in layers):
        per = [x for layer in layers for x in (profiles[layer].prompt_delta[factor_index], profiles[layer].prompt_clean_norm)]
        interval = prompt_bootstrap(statistic, per, seed=seed)
    holds = not failures
    some = profiles[layers[0]]
    evidence = {"layers": layers, "sites": list(some.sites), "delta": matrix, "factor": some.factors[factor_index]}
    evidence["statistic_is"] = "largest relative Δ before the scaled block" if use_before else "smallest relative Δ at or after it"
    evidence["invariant_sites"] = invariant
    evidence["invariant_share_limit"] = INVARIANT_SHARE
    ci95, fragile, threshold = _sureness(stat, limit, interval, evidence)
    worst_share = max((x["share_of_scaling"] for x in invariant if x["share_of_scaling"] is not None), default=0.0)
    invariance_text = (
        f"; invariant by construction (left out of \"moved\"): {', '.join(sorted({x['site'] for x in invariant}))}, "
        f"largest share of the scaling {worst_share:.3g} (needs ≤ {INVARIANT_SHARE:g})"
        if invariant
        else ""
    )
    margins = [limit - worst_before, smallest_after - limit] + ([INVARIANT_SHARE - worst_share] if invariant else [])
    return Verdict(
        "C0",
        HOLDS if holds else REFUTED,
        margin=min(margins),
        margin_text=f"largest relative Δ before the scaled block = {worst_before:.3g} (limit {limit:g}); "
        f"smallest relative Δ at or after it = {smallest_after:.3g} (needs > {limit:g})" + invariance_text,
        reason="every layer's scaling reached every later site and no earlier one" if holds else "; ".join(failures[:3]),
        evidence=evidence,
        statistic=_finite(stat),
        threshold=threshold,
        ci95=ci95,
        fragile=fragile,
    )


PURE_SCALING = ("scale",)  # intervention kinds that multiply a token's whole state by one number


def invariant_sites(prof: Profile) -> dict[str, str]:
    """{site: reason} for the sites that scaling block L cannot move by construction.

    With the last block scaled, `final_norm` is the final LayerNorm/RMSNorm (and, on OPT, a bias-free
    linear map after it) applied to exactly s·h, token by token: N_ε(s·h) = N_{ε/s²}(h), so only ε
    carries the scaling (INVARIANT_SHARE). Every architecture row's final norm is a LayerNorm or an
    RMSNorm; a model without one has no `final_norm` site. Only pure scaling is invisible to a norm:
    an edit that is not one multiplier per token (noise, a direction, an ablation, a sub-layer's
    write) moves the norm's output and keeps the site among those that must move.
    """
    n = sum(1 for s in prof.sites if s.startswith("block."))
    pure = prof.intervention in PURE_SCALING and prof.component == "output"  # any positions: each token is scaled or kept
    if prof.layer == n - 1 and "final_norm" in prof.sites and pure:
        return {
            "final_norm": f"the final norm is applied to block {n - 1}'s scaled output itself, and LayerNorm/RMSNorm are "
            "scale-invariant: N(s·h) = N(h) up to the norm's ε"
        }
    return {}


def zero_relative(dtype: str) -> float:
    """ZERO_RELATIVE for a resolved dtype name ('float32', 'bfloat16', 'float16'); 'auto' must be resolved first."""
    try:
        return ZERO_RELATIVE[dtype]
    except KeyError:
        raise ValueError(
            f"dtype {dtype!r} has no ZERO_RELATIVE limit: give the subject's resolved dtype, one of {', '.join(ZERO_RELATIVE)}"
        ) from None


def first_token_curve(prof: Profile, ratio: float = FIRST_TOKEN_RATIO, points: int = 40) -> dict[str, object]:
    """C5's length covariate: the ratio Δ(with first)/Δ(without) predicted at the scaled block by prompt length.

    Scaling block L's output by s moves token t there by |1 − s|·‖h_t‖ (clean state), so for a prompt
    of T tokens the ratio at block L is sqrt(1 + ‖h_1‖² / Σ_{t>1} ‖h_t‖²) ≈ sqrt(1 + r²/(T − 1)),
    r = rms ‖h_1‖ / rms ‖h_t‖ over the corpus (t > 1). Both rms are read exactly from the profile's
    Frobenius norms: Σ_p ‖h_1‖² = clean_norm_all_tokens² − clean_norm² over P first tokens, and
    clean_norm² over Σ_p (T_p − 1) other tokens. The curve reaches `ratio` for T ≤ 1 + r²/(ratio² − 1).
    JSON-ready; r is None (and the curve absent) where no other token has any norm, and where the
    intervention does not move every token by one multiple of its norm (`curve_not_applicable` says why:
    add, mean-ablate, scale-update, an edited sub-layer or some positions only; noise moves token t by
    s·‖h_t‖, so the curve holds for it as for scaling).
    """
    at = prof.site(f"block.{prof.layer}")
    why_not = InterventionSpec(prof.intervention, prof.positions, prof.component).first_token_curve_note()
    n_first, n_other = len(prof.prompt_lengths), sum(t - 1 for t in prof.prompt_lengths)
    first_sq = max(float(prof.clean_norm_all_tokens[at]) ** 2 - float(prof.clean_norm[at]) ** 2, 0.0)
    other_rms = float(prof.clean_norm[at]) / np.sqrt(n_other) if n_other else 0.0
    out: dict[str, object] = {
        "first_token_rms_norm": float(np.sqrt(first_sq / n_first)),
        "other_token_rms_norm": other_rms,
        "first_token_mean_norm": float(prof.first_token_norm[at]),
        "other_token_mean_norm": float(prof.other_token_norm[at]),
    }
    if other_rms <= 0 or why_not:
        none = {"norm_ratio_r": None, "predicted_lengths": [], "predicted_ratio": [], "predicted_crossing_length": None}
        return {**out, **none, **({"curve_not_applicable": why_not} if why_not else {})}
    r = float(np.sqrt(first_sq / n_first)) / other_rms
    crossing = predicted_crossing_length(r, ratio)
    top = max(max(prof.prompt_lengths), int(np.ceil(crossing)), 3)
    lengths = np.unique(np.round(np.geomspace(2, top, points)).astype(int))
    return {
        **out,
        "norm_ratio_r": r,
        "predicted_lengths": lengths.tolist(),
        "predicted_ratio": predicted_first_token_ratio(r, lengths).tolist(),
        "predicted_crossing_length": crossing,
    }


def predicted_first_token_ratio(r: float, lengths: np.ndarray | Sequence[int]) -> np.ndarray:
    """sqrt(1 + r²/(T − 1)) for each prompt length T > 1: C5's ratio at the scaled block (first_token_curve)."""
    t = np.asarray(lengths, dtype=np.float64)
    if np.any(t <= 1):
        raise ValueError(f"prompt lengths {t[t <= 1].tolist()} are not above 1: the ratio needs a token besides the first.")
    return np.sqrt(1.0 + r * r / (t - 1.0))


def predicted_crossing_length(r: float, ratio: float = FIRST_TOKEN_RATIO) -> float:
    """The length T at which sqrt(1 + r²/(T − 1)) falls to `ratio`: prompts up to it reach the ratio."""
    return 1.0 + r * r / (ratio * ratio - 1.0)


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


def _sites_before(prof: Profile) -> list[int]:
    return list(range(prof.site(f"block.{prof.layer}")))


def _growth_span(prof: Profile) -> list[int]:
    """Block L up to the last site before the note's final one (block N−2)."""
    _, previous = final_readings(prof)["note"]
    return list(range(prof.site(f"block.{prof.layer}"), previous + 1))


def _first_token_span(prof: Profile) -> list[int]:
    """Block L up to the last block (a one-block model has no block N−2, which final_readings needs)."""
    n = sum(1 for s in prof.sites if s.startswith("block."))
    return list(range(prof.site(f"block.{prof.layer}"), prof.site(f"block.{n - 1}") + 1))


def _steps(values: np.ndarray) -> np.ndarray:
    """(..., n − 1) ratios of consecutive values along the last axis."""
    return _ratio(values[..., 1:], values[..., :-1])


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.where(num > 0, np.inf, 1.0))


def _nonlinearity(values: np.ndarray) -> float:
    """Largest distance of `values` from the straight line through its end points, over its range."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 3:
        return 0.0
    line = np.linspace(values[0], values[-1], values.size)
    spread = float(values.max() - values.min())
    return float(np.abs(values - line).max() / spread) if spread > 0 else 0.0


def _drop(deltas: np.ndarray, final: int, previous: int) -> float:
    return float(1.0 - _ratio(deltas[final], deltas[previous]))


def _aggregate(prof: Profile, factor_index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A claim rule's inputs over the whole corpus: Δ, ‖H_clean‖ and Δ with the first token, each (S,)."""
    return prof.delta[factor_index], prof.clean_norm, prof.delta_all_tokens[factor_index]


def _prompt_share(prof: Profile, factor_index: int, rule: Rule) -> float | None:
    """Share of prompts on which `rule` holds, applied to each prompt's own (S,) vectors; None without them."""
    if prof.prompt_delta is None:
        return None
    d, c, a = prof.prompt_delta[factor_index], prof.prompt_clean_norm, prof.prompt_delta_all_tokens[factor_index]
    return float(np.mean([rule(d[:, p], c[:, p], a[:, p]) for p in range(d.shape[1])]))


def _with_share(margin: float, aggregate: bool, share: float | None) -> tuple[float, str]:
    """The verdict's margin and the margin text's tail, once the prompt share is known.

    When the aggregate holds but too few prompts do, the share is what fails: the margin becomes
    share − PROMPT_SHARE (< 0), so a margin is > 0 exactly when the claim holds.
    """
    if share is None:
        return margin, ""
    if aggregate and share < PROMPT_SHARE:
        return share - PROMPT_SHARE, (
            f"; holds on {share:.0%} of prompts, so margin = prompt share − PROMPT_SHARE = {share - PROMPT_SHARE:.3g} "
            f"(the aggregate's own margin is {margin:.3g})"
        )
    return margin, f"; holds on {share:.0%} of prompts"


def _per_prompt(prof: Profile, factor_index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A statistic's inputs prompt by prompt: Δ, ‖H_clean‖ and Δ with the first token, each (P, S)."""
    return prof.prompt_delta[factor_index].T, prof.prompt_clean_norm.T, prof.prompt_delta_all_tokens[factor_index].T


def _verdict(
    claim: str,
    prof: Profile,
    factor_index: int,
    rule: Rule,
    statistic: Statistic,
    *,
    threshold: float | tuple[float, float],
    seed: int,
    margin: float,
    margin_text: str,
    reason: str,
    evidence: dict,
) -> Verdict:
    """The verdict of `rule` on the aggregate and the prompts, with `statistic`'s value, interval and fragility."""
    aggregate = rule(*_aggregate(prof, factor_index))
    share = _prompt_share(prof, factor_index, rule)
    evidence = {**evidence, "aggregate_holds": aggregate, "prompt_share": share, "prompt_share_needed": PROMPT_SHARE}
    stat = float(statistic(*_aggregate(prof, factor_index)))
    interval = None
    if prof.prompt_delta is not None:
        parts = (prof.prompt_delta[factor_index], prof.prompt_clean_norm, prof.prompt_delta_all_tokens[factor_index])
        interval = prompt_bootstrap(statistic, parts, seed=seed)
        evidence["prompt_lengths"] = list(prof.prompt_lengths)
        evidence["prompt_statistic"] = _finite_list(statistic(*_per_prompt(prof, factor_index)))
    return _decided(
        claim,
        aggregate,
        share,
        stat=stat,
        threshold=threshold,
        interval=interval,
        margin=margin,
        margin_text=margin_text,
        reason=reason,
        evidence=evidence,
    )


def _decided(
    claim: str,
    aggregate: bool,
    share: float | None,
    *,
    stat: float,
    threshold: float | tuple[float, float],
    interval: Interval | None,
    margin: float,
    margin_text: str,
    reason: str,
    evidence: dict,
) -> Verdict:
    """The verdict of a rule that held (or not) on the aggregate and on `share` of the prompts (None: not judged
    per prompt): it holds on both or not at all; with the statistic's interval, fragility and the share's margin."""
    holds = aggregate and (share is None or share >= PROMPT_SHARE)
    if aggregate and not holds:
        reason = f"holds on the aggregate but only on {share:.0%} of prompts (needs {PROMPT_SHARE:.0%}); {reason}"
    ci95, fragile, threshold_value = _sureness(stat, threshold, interval, evidence)
    margin, share_text = _with_share(margin, aggregate, share)
    return Verdict(
        claim,
        HOLDS if holds else REFUTED,
        margin=_finite(margin),
        margin_text=margin_text + share_text,
        reason=reason,
        evidence=evidence,
        statistic=_finite(stat),
        threshold=threshold_value,
        ci95=ci95,
        fragile=fragile,
    )


def _sureness(
    stat: float, threshold: float | tuple[float, ...], interval: Interval | None, evidence: dict
) -> tuple[tuple[float, float] | None, bool | None, float]:
    """(ci95, fragile, threshold) for a statistic; records how the interval was made in `evidence`.

    ci95 is the percentile interval widened, where needed, to contain the statistic itself: the
    aggregate is computed once more from per-prompt sums, so on a statistic that does not vary (C2's
    |1 − s|) the two differ by float rounding; where the whole bootstrap distribution lies on one
    side of the statistic (a biased statistic such as a minimum) widening is the cautious reading.
    evidence["bootstrap"] keeps the unwidened interval. fragile: some threshold lies inside ci95.
    With two bounds (C4) the threshold reported is a bound inside ci95 if one is, else the bound
    nearest the statistic; evidence["threshold_bounds"] lists both.
    """
    bounds = tuple(threshold) if isinstance(threshold, tuple) else (float(threshold),)
    if len(bounds) > 1:
        evidence["threshold_bounds"] = list(bounds)

    def nearest(candidates: Sequence[float]) -> float:
        return min(candidates, key=lambda b: abs(b - stat) if np.isfinite(stat) else 0.0)

    if interval is None or np.isnan(interval.low) or np.isnan(interval.high):
        return None, None, nearest(bounds)
    low, high = (min(interval.low, stat), max(interval.high, stat)) if np.isfinite(stat) else (interval.low, interval.high)
    evidence["bootstrap"] = {
        **interval.describe(),
        "percentile_interval": [_finite(interval.low), _finite(interval.high)],
        "widened_to_statistic": bool(low < interval.low or high > interval.high),
    }
    inside = [b for b in bounds if low <= b <= high]
    return (low, high), bool(inside), nearest(inside or bounds)


def _finite_list(values: np.ndarray) -> list[float | None]:
    return [_finite(v) for v in np.asarray(values, dtype=np.float64).ravel()]


def _finite(value: float) -> float | None:
    """JSON has no inf/NaN: report them as None (the text says what happened)."""
    return float(value) if value is not None and np.isfinite(value) else None
