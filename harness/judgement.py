"""Judgements: the note's claims as pure functions of a profile, each returning a Verdict.

    prof = profile(subject, prompts, layer=2, factors=[0.5], per_prompt=True)
    verdict = judge_c3(prof, factor_index=0)
    verdict.verdict      # "holds" or "refuted"
    verdict.margin       # > 0: held with that much room; < 0: refuted by that much (units in margin_text)
    verdict.evidence     # the numbers the verdict rests on, JSON-ready

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
PROMPT_SHARE = 0.75
    A claim on a corpus holds when it holds on the aggregate Δ (Frobenius over every prompt's
    tokens) and, judged prompt by prompt, on at least three quarters of the prompts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from harness.profile import Profile

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
PROMPT_SHARE = 0.75

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
    "PROMPT_SHARE": PROMPT_SHARE,
}


@dataclass(frozen=True)
class Claim:
    id: str
    section: str
    title: str
    statement: str  # the claim in our words
    test: str  # how it is judged, thresholds named
    empirical: bool  # depends on trained weights (not applicable to random-gpt2)


CLAIMS: dict[str, Claim] = {
    c.id: c
    for c in (
        Claim(
            "C0",
            "§1",
            "Causality across depth",
            "Scaling the output of block n changes every later site and leaves every earlier site untouched.",
            "For every block n: relative Δ ≤ ZERO_RELATIVE at every site before block n, and Δ > 0 at block n and after.",
            empirical=False,
        ),
        Claim(
            "C1",
            "§3.1",
            "No change before the scaled block",
            "Before the scaled block (embedding, blocks 0 and 1 for the note's layer 2) Δ is essentially zero.",
            "Relative Δ ≤ ZERO_RELATIVE at every site before block L.",
            empirical=False,
        ),
        Claim(
            "C2",
            "§3.1",
            "A jump at the scaled block",
            "At the scaled block Δ jumps from about zero to a large value.",
            "Relative Δ at block L ≥ JUMP_RELATIVE and Δ(block L) ≥ JUMP_OVER_NOISE × the largest Δ before it.",
            empirical=False,
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
        ),
        Claim(
            "C4",
            "§3.3, §4",
            "A slight drop at the final block",
            "At the last site before the unembedding, Δ is slightly lower than one site earlier, for every factor from 0.5 to 1.5.",
            "DROP_MIN < 1 − Δ(final)/Δ(previous) ≤ SLIGHT_DROP_MAX, with final = the final norm's output "
            "(HuggingFace's last hidden state); the raw last block is reported beside it.",
            empirical=True,
        ),
        Claim(
            "C5",
            "§3.2",
            "The first token dominates Δ",
            "Counting the first token makes Δ about ten times larger, because its activations are very large.",
            "Median over blocks L…N−1 of Δ(with first token)/Δ(without) ≥ FIRST_TOKEN_RATIO.",
            empirical=True,
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
# Per-claim judgements. Each takes a profile (per_prompt=True for the prompt share) and the index
# of the factor to judge, and looks only at numbers inside the profile. Each states its claim once,
# as a `rule(delta, clean_norm, delta_all_tokens) -> bool` over the sites, and applies that same
# rule to the corpus aggregate and to every prompt.

Rule = Callable[[np.ndarray, np.ndarray, np.ndarray], bool]


def judge_c1(prof: Profile, factor_index: int = 0, dtype: str = "float32") -> Verdict:
    before = _sites_before(prof)
    rel = prof.relative_delta[factor_index, before]
    worst = float(rel.max()) if rel.size else 0.0
    limit = ZERO_RELATIVE[dtype]

    def rule(d: np.ndarray, c: np.ndarray, a: np.ndarray) -> bool:
        return bool(np.all(_ratio(d[before], c[before]) <= limit))

    holds = rule(*_aggregate(prof, factor_index))
    return _verdict(
        "C1",
        holds,
        _prompt_share(prof, factor_index, rule),
        margin=limit - worst,
        margin_text=f"largest relative Δ before block {prof.layer} = {worst:.3g} (limit {limit:g})",
        reason=("nothing before the scaled block moved" if holds else f"a site before block {prof.layer} moved by {worst:.3g}"),
        evidence={"sites": [prof.sites[i] for i in before], "relative_delta": rel.tolist()},
    )


def judge_c2(prof: Profile, factor_index: int = 0) -> Verdict:
    at = prof.site(f"block.{prof.layer}")
    before = _sites_before(prof)
    rel_at = float(prof.relative_delta[factor_index, at])
    noise = float(prof.delta[factor_index, before].max()) if before else 0.0
    jump = float(prof.delta[factor_index, at]) / noise if noise > 0 else float("inf")

    def rule(d: np.ndarray, c: np.ndarray, a: np.ndarray) -> bool:
        return bool(_ratio(d[at], c[at]) >= JUMP_RELATIVE and d[at] >= JUMP_OVER_NOISE * (d[before].max() if before else 0.0))

    return _verdict(
        "C2",
        rule(*_aggregate(prof, factor_index)),
        _prompt_share(prof, factor_index, rule),
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


def judge_c3(prof: Profile, factor_index: int = 0) -> Verdict:
    span = _growth_span(prof)
    deltas = prof.delta[factor_index, span]
    steps = _steps(deltas)
    worst_step = float(steps.min()) if steps.size else float("nan")
    bend = _nonlinearity(deltas)
    increasing = bool(steps.size) and worst_step > GROWTH_STEP

    def rule(d: np.ndarray, c: np.ndarray, a: np.ndarray) -> bool:
        s = _steps(d[span])
        return bool(s.size and s.min() > GROWTH_STEP and _nonlinearity(d[span]) >= NONLINEAR_MIN)

    names = [prof.sites[i] for i in span]
    if not increasing:
        k = int(np.argmin(steps)) if steps.size else 0
        reason = f"Δ falls from {names[k]} to {names[k + 1]} (×{worst_step:.3f})" if steps.size else "too few sites"
    elif bend < NONLINEAR_MIN:
        reason = f"Δ grows but along a straight line (departure {bend:.3f} of its range)"
    else:
        reason = f"Δ grows at every step from {names[0]} to {names[-1]}, bending by {bend:.1%} of its range"
    return _verdict(
        "C3",
        rule(*_aggregate(prof, factor_index)),
        _prompt_share(prof, factor_index, rule),
        margin=worst_step - GROWTH_STEP,
        margin_text=f"smallest step ratio Δ(s+1)/Δ(s) = {worst_step:.4f} (needs > {GROWTH_STEP:g}); bend = {bend:.3f}",
        reason=reason,
        evidence={
            "sites": names,
            "delta": deltas.tolist(),
            "relative_delta": prof.relative_delta[factor_index, span].tolist(),
            "step_ratio": steps.tolist(),
            "nonlinearity": bend,
        },
    )


def judge_c4(prof: Profile, factor_index: int = 0) -> Verdict:
    readings = final_readings(prof)
    final, previous = readings["note"]
    drop = _drop(prof.delta[factor_index], final, previous)

    def rule(d: np.ndarray, c: np.ndarray, a: np.ndarray) -> bool:
        return DROP_MIN < _drop(d, final, previous) <= SLIGHT_DROP_MAX

    other = {
        name: {"final": prof.sites[f], "previous": prof.sites[p], "drop": _drop(prof.delta[factor_index], f, p)}
        for name, (f, p) in readings.items()
    }
    word = "drops" if drop > 0 else "rises"
    return _verdict(
        "C4",
        rule(*_aggregate(prof, factor_index)),
        _prompt_share(prof, factor_index, rule),
        margin=min(drop - DROP_MIN, SLIGHT_DROP_MAX - drop),
        margin_text=f"drop 1 − Δ({prof.sites[final]})/Δ({prof.sites[previous]}) = {drop:+.4f} "
        f"(needs {DROP_MIN:g} < drop ≤ {SLIGHT_DROP_MAX:g})",
        reason=f"Δ {word} by {abs(drop):.1%} from {prof.sites[previous]} to {prof.sites[final]}",
        evidence={"readings": other, "delta": prof.delta[factor_index].tolist(), "sites": list(prof.sites)},
    )


def judge_c5(prof: Profile, factor_index: int = 0) -> Verdict:
    span = _first_token_span(prof)
    ratios = _ratio(prof.delta_all_tokens[factor_index, span], prof.delta[factor_index, span])
    median = float(np.median(ratios))

    def rule(d: np.ndarray, c: np.ndarray, a: np.ndarray) -> bool:
        return bool(np.median(_ratio(a[span], d[span])) >= FIRST_TOKEN_RATIO)

    evidence: dict[str, object] = {"sites": [prof.sites[i] for i in span], "ratio": ratios.tolist()}
    if prof.prompt_delta is not None:
        per = _ratio(prof.prompt_delta_all_tokens[factor_index][span], prof.prompt_delta[factor_index][span])  # (S, P)
        evidence["prompt_lengths"] = list(prof.prompt_lengths)
        evidence["prompt_ratio"] = np.median(per, axis=0).tolist()
    return _verdict(
        "C5",
        rule(*_aggregate(prof, factor_index)),
        _prompt_share(prof, factor_index, rule),
        margin=median - FIRST_TOKEN_RATIO,
        margin_text=f"median Δ(with first)/Δ(without) over blocks {prof.layer}… = {median:.3g} (needs ≥ {FIRST_TOKEN_RATIO:g})",
        reason=f"counting the first token multiplies Δ by {median:.3g} (median over sites)",
        evidence=evidence,
    )


JUDGES = {"C1": judge_c1, "C2": judge_c2, "C3": judge_c3, "C4": judge_c4, "C5": judge_c5}


def judge_c0(profiles: dict[int, Profile], factor_index: int = 0, dtype: str = "float32") -> Verdict:
    """C0 over one profile per intervention layer: untouched before, moved at and after."""
    limit = ZERO_RELATIVE[dtype]
    matrix, failures = [], []
    worst_before, smallest_after = 0.0, float("inf")
    for layer, prof in sorted(profiles.items()):
        rel = prof.relative_delta[factor_index]
        matrix.append(prof.delta[factor_index].tolist())
        at = prof.site(f"block.{layer}")
        before, after = rel[:at], rel[at:]
        worst_before = max(worst_before, float(before.max()) if before.size else 0.0)
        smallest_after = min(smallest_after, float(after.min()))
        if before.size and before.max() > limit:
            failures.append(f"block {layer}: a site before it moved ({before.max():.3g})")
        if after.min() <= limit:
            failures.append(f"block {layer}: {prof.sites[at + int(np.argmin(after))]} did not move")
    holds = not failures
    some = next(iter(profiles.values()))
    return Verdict(
        "C0",
        HOLDS if holds else REFUTED,
        margin=min(limit - worst_before, smallest_after - limit),
        margin_text=f"largest relative Δ before the scaled block = {worst_before:.3g} (limit {limit:g}); "
        f"smallest relative Δ at or after it = {smallest_after:.3g} (needs > {limit:g})",
        reason="every layer's scaling reached every later site and no earlier one" if holds else "; ".join(failures[:3]),
        evidence={"layers": sorted(profiles), "sites": list(some.sites), "delta": matrix, "factor": some.factors[factor_index]},
    )


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
    final, _ = final_readings(prof)["raw"]
    return list(range(prof.site(f"block.{prof.layer}"), final + 1))


def _steps(values: np.ndarray) -> np.ndarray:
    return _ratio(values[1:], values[:-1])


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


def _verdict(claim: str, aggregate: bool, share: float | None, *, margin: float, margin_text: str, reason: str, evidence: dict) -> Verdict:
    holds = aggregate and (share is None or share >= PROMPT_SHARE)
    if aggregate and not holds:
        reason = f"holds on the aggregate but only on {share:.0%} of prompts (needs {PROMPT_SHARE:.0%}); {reason}"
    evidence = {**evidence, "aggregate_holds": aggregate, "prompt_share": share, "prompt_share_needed": PROMPT_SHARE}
    share_text = "" if share is None else f"; holds on {share:.0%} of prompts"
    return Verdict(
        claim, HOLDS if holds else REFUTED, margin=_finite(margin), margin_text=margin_text + share_text, reason=reason, evidence=evidence
    )


def _finite(value: float) -> float | None:
    """JSON has no inf/NaN: report them as None (the text says what happened)."""
    return float(value) if value is not None and np.isfinite(value) else None
