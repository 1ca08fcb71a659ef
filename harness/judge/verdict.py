"""The decision every claim shares: a rule held on the corpus and on PROMPT_SHARE of its prompts, made sure.

    verdict = judge_rule("C3", prof, 0, rule, statistic, threshold=1.0, seed=0, margin=..., margin_text=..., reason=...,
                         evidence={})
    verdict.verdict      # "holds" or "refuted"
    verdict.margin       # > 0: held with that much room; < 0: refuted by that much (units in margin_text)
    verdict.evidence     # the numbers the verdict rests on, JSON-ready
    verdict.statistic, verdict.threshold   # the number the rule compares, and what it is compared to
    verdict.ci95         # 95 % percentile bootstrap interval of the statistic over prompts (seed=...)
    verdict.fragile      # True when that interval contains the threshold; None without per-prompt data

PROMPT_SHARE = 0.75
    A claim on a corpus holds when it holds on the aggregate Δ (Frobenius over every prompt's
    tokens) and, judged prompt by prompt, on at least three quarters of the prompts.

`decide` is the decision itself, for a rule already applied (the note's C0 and C6 apply theirs to
other numbers than one profile's Δ); `judge_rule` applies a rule and its statistic to a profile's
aggregate and to each prompt, bootstraps the statistic and decides. Each claim is a record
(harness.judge.claim.Claim) that states its rule once and hands it to one of these.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from harness.judge.bootstrap import Interval, prompt_bootstrap
from harness.measure.record import Profile

HOLDS, REFUTED, NOT_APPLICABLE = "holds", "refuted", "not-applicable"
VERDICTS = (HOLDS, REFUTED, NOT_APPLICABLE)
PROMPT_SHARE = 0.75


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
            "margin": finite(self.margin),
            "margin_text": self.margin_text,
            "reason": self.reason,
            "evidence": self.evidence,
            "statistic": finite(self.statistic),
            "threshold": finite(self.threshold),
            "ci95": None if self.ci95 is None else [finite(v) for v in self.ci95],
            "fragile": self.fragile,
        }


# ---------------------------------------------------------------------------------------------
# Rules over a profile. A claim's judge takes a profile (per_prompt=True for the prompt share and the interval)
# and the index of the factor to judge, and looks only at numbers inside the profile. Each states its
# claim once, as a `rule(delta, clean_norm, delta_all_tokens) -> bool` over the sites, and applies
# that same rule to the corpus aggregate and to every prompt. The number a rule compares is one
# vectorised `statistic(delta, clean_norm, delta_all_tokens)` over arrays (..., S) -> (...): the same
# function gives the verdict's statistic (on the aggregate), each prompt's value (on (P, S)) and the
# bootstrap distribution (on (B, S) resampled aggregates, harness/judge/bootstrap.py).

Rule = Callable[[np.ndarray, np.ndarray, np.ndarray], bool]
Statistic = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.where(num > 0, np.inf, 1.0))



def aggregate_of(prof: Profile, factor_index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A claim rule's inputs over the whole corpus: Δ, ‖H_clean‖ and Δ with the first token, each (S,)."""
    return prof.delta[factor_index], prof.clean_norm, prof.delta_all_tokens[factor_index]


def prompt_share(prof: Profile, factor_index: int, rule: Rule) -> float | None:
    """Share of prompts on which `rule` holds, applied to each prompt's own (S,) vectors; None without them."""
    if prof.prompt_delta is None:
        return None
    d, c, a = prof.prompt_delta[factor_index], prof.prompt_clean_norm, prof.prompt_delta_all_tokens[factor_index]
    return float(np.mean([rule(d[:, p], c[:, p], a[:, p]) for p in range(d.shape[1])]))


def with_share(margin: float, aggregate: bool, share: float | None) -> tuple[float, str]:
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


def per_prompt_of(prof: Profile, factor_index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A statistic's inputs prompt by prompt: Δ, ‖H_clean‖ and Δ with the first token, each (P, S)."""
    return prof.prompt_delta[factor_index].T, prof.prompt_clean_norm.T, prof.prompt_delta_all_tokens[factor_index].T


def judge_rule(
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
    aggregate = rule(*aggregate_of(prof, factor_index))
    share = prompt_share(prof, factor_index, rule)
    evidence = {**evidence, "aggregate_holds": aggregate, "prompt_share": share, "prompt_share_needed": PROMPT_SHARE}
    stat = float(statistic(*aggregate_of(prof, factor_index)))
    interval = None
    if prof.prompt_delta is not None:
        parts = (prof.prompt_delta[factor_index], prof.prompt_clean_norm, prof.prompt_delta_all_tokens[factor_index])
        interval = prompt_bootstrap(statistic, parts, seed=seed)
        evidence["prompt_lengths"] = list(prof.prompt_lengths)
        evidence["prompt_statistic"] = finite_list(statistic(*per_prompt_of(prof, factor_index)))
    return decide(
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


def decide(
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
    ci95, fragile, threshold_value = sureness(stat, threshold, interval, evidence)
    margin, share_text = with_share(margin, aggregate, share)
    return Verdict(
        claim,
        HOLDS if holds else REFUTED,
        margin=finite(margin),
        margin_text=margin_text + share_text,
        reason=reason,
        evidence=evidence,
        statistic=finite(stat),
        threshold=threshold_value,
        ci95=ci95,
        fragile=fragile,
    )


def sureness(
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
        "percentile_interval": [finite(interval.low), finite(interval.high)],
        "widened_to_statistic": bool(low < interval.low or high > interval.high),
    }
    inside = [b for b in bounds if low <= b <= high]
    return (low, high), bool(inside), nearest(inside or bounds)


def finite_list(values: np.ndarray) -> list[float | None]:
    return [finite(v) for v in np.asarray(values, dtype=np.float64).ravel()]


def finite(value: float) -> float | None:
    """JSON has no inf/NaN: report them as None (the text says what happened)."""
    return float(value) if value is not None and np.isfinite(value) else None

