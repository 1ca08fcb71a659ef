"""C6 (§4, derived from the conclusion): scaling block L changes the next-token predictions materially.

Needs an LM head: not applicable on a checkpoint without one (all-MiniLM-L6-v2), and on random-gpt2
by expectation (an empirical claim about trained weights). Its profiles come from the model's clean
pass with predictions (harness.measure.session), made on first use. The note-factor items carry a
dose-response curve over DOSE_GRID and the KL at the note factor with each block scaled in turn.
Factors within FACTOR_BAND of 1 are left out of the drawn ones: the claim is about a visible change.
"""

from __future__ import annotations

import numpy as np

from harness.judge.bootstrap import RESAMPLES, Interval, percentile_interval, resample_counts
from harness.judge.claim import Claim
from harness.judge.verdict import NOT_APPLICABLE, PROMPT_SHARE, Verdict, decide, finite, finite_list
from harness.measure.record import Profile
from harness.note.thresholds import KL_MATERIAL, TOP1_MAX, named

# C6's evidence grid: 0.5, 0.6, …, 1.5, factor 1 and the band's edges included (the document contract)
DOSE_GRID = tuple(round(0.5 + 0.1 * i, 1) for i in range(11))


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
        "kl": finite(kl),
        "top1_agreement": finite(top1),
        "nll_change": finite(nll),
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
            prompt_statistic=finite_list(per_kl),
            prompt_top1_agreement=finite_list(per_top1),
        )
    evidence.update(prompt_share=share, prompt_share_needed=PROMPT_SHARE)
    if kl < KL_MATERIAL:
        reason = f"the predictions barely move: KL {kl:.3g} nats per token (needs ≥ {KL_MATERIAL:g})"
    elif top1 > TOP1_MAX:
        reason = f"the distribution moves (KL {kl:.3g} nats) but {top1:.1%} of the top-1 predictions stay (needs ≤ {TOP1_MAX:.0%})"
    else:
        reason = f"KL {kl:.3g} nats per token and {1 - top1:.1%} of the top-1 predictions change"
    return decide(
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




def has_head(subject: object, layer: int) -> str | None:
    """C6 reads the model's predictions: it needs the checkpoint's LM head."""
    return None if subject.head is not None else f"{subject.name} has {subject.head_note}"


def prediction_curves(run: object, factor: float) -> dict[str, object]:
    """C6's evidence: the dose-response over DOSE_GRID at the run's layer, and the KL at `factor` with each block scaled."""
    dose = run.profile(run.layer, DOSE_GRID, predictions=True)
    return {
        "dose_response": {
            "factors": list(DOSE_GRID),
            "kl": _listed(dose.kl),
            "top1_agreement": _listed(dose.top1_agreement),
            "nll_change": _listed(dose.nll_change),
        },
        "kl_by_layer": {
            "layers": list(range(run.subject.n_blocks)),
            "kl": [_listed(run.profile(n, (factor,), predictions=True).kl)[0] for n in range(run.subject.n_blocks)],
            "factor": factor,
        },
    }


def _listed(values: object) -> list[float | None]:
    """JSON-ready floats; None for a value not measured (nll_change of a masked LM) or not finite."""
    return [] if values is None else [float(v) if np.isfinite(v) else None for v in values]


C6 = Claim(
    "C6",
    "Predictions change materially",
    "Scaling block L's output by any factor in the note's range at least FACTOR_BAND away from 1 changes the "
    "model's next-token predictions materially: the drift reaches the output.",
    section="§4",
    test="Mean KL(p_clean ‖ p_scaled) ≥ KL_MATERIAL nats and top-1 agreement ≤ TOP1_MAX over the counted "
    "positions, on the aggregate and on at least PROMPT_SHARE of the prompts.",
    empirical=True,
    statistic="mean KL(p_clean ‖ p_scaled) per position, nats (top-1 agreement beside it)",
    needs=">=",
    derived="derived from the conclusion (§4): the note measures hidden states only",
    thresholds=named("KL_MATERIAL", "TOP1_MAX"),
    judge=lambda prof, run: judge_c6(prof, seed=run.seed),
    measure=lambda run, factor: run.profile(run.layer, (factor,), predictions=True),
    applies=has_head,
    evidence=lambda run, factor, prof: prediction_curves(run, factor),
    figure="predictions",
    intervention_map=True,
    under={
        "scale": "the note's scaling reaches the output: KL and top-1 agreement after s·h at block L; the dose grid is "
        "the note's factors 0.5…1.5",
        "scale-update": "block L's update rescaled (half removed at 0.5, amplified at 1.5) changes the predictions: the "
        "rule then asks whether block L matters to the output; the dose grid runs s over 0.5…1.5, identity at 1",
        "noise": "noise of s times each token's norm at block L changes the predictions; the dose grid is the note's "
        "factors 0.5…1.5, each measured as its strength",
        "add": "adding s·v at block L changes the predictions: whether the direction steers the output; the dose grid "
        "runs s over 0.5…1.5",
        "mean-ablate": "pulling block L's tokens toward their mean changes the predictions: whether the token-specific "
        "part of the state matters; the dose grid is the note's factors 0.5…1.5, each measured as its strength",
    },
)
