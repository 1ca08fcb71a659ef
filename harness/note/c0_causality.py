"""C0 (§1): scaling block n changes every later site and never an earlier one, for every n.

C0 is structural (a property of the computation graph, not of what the weights learned), and it
needs one profile per block, so it runs on the first C0_PROMPTS prompts of the corpus.
Drawn examples pick a block and a factor outside the band around 1 (a factor of 1 changes nothing).
"""

from __future__ import annotations

import numpy as np

from harness.judge.bootstrap import prompt_bootstrap
from harness.judge.claim import Claim
from harness.judge.verdict import HOLDS, REFUTED, Verdict, finite, ratio, sureness
from harness.measure.record import Profile
from harness.note.thresholds import INVARIANT_SHARE, named, zero_relative

C0_PROMPTS = 8


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
            worst = int(np.argmax(before))
            failures.append(f"block {layer}: {prof.sites[worst]}, before it, moved ({before[worst]:.3g})")
        if rel[must].min() <= limit:
            failures.append(f"block {layer}: {prof.sites[must[int(np.argmin(rel[must]))]]} did not move")
        for site, why in exempt.items():
            share = float(ratio(rel[prof.site(site)], rel[at]))
            invariant.append({"layer": layer, "site": site, "relative_delta": finite(rel[prof.site(site)]),
                              "share_of_scaling": finite(share), "reason": why})
            if not share <= INVARIANT_SHARE:
                failures.append(
                    f"block {layer}: {site} moved by {share:.3g} of the scaling at block {layer}, "
                    f"but it is scale-invariant there (needs ≤ INVARIANT_SHARE = {INVARIANT_SHARE:g})"
                )

    def sides(*parts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(largest relative Δ before, smallest over the sites that must move) over layers; parts = Δ, ‖H‖ per layer, each (..., S)."""
        rels = [ratio(d, c) for d, c in zip(parts[0::2], parts[1::2], strict=True)]
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
    ci95, fragile, threshold = sureness(stat, limit, interval, evidence)
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
        statistic=finite(stat),
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


def _profiles(run: object, factor: float, layer: int | None = None) -> dict[int, Profile]:
    """One profile per scaled block (or the drawn one), on the first C0_PROMPTS prompts, per prompt."""
    blocks = range(run.subject.n_blocks) if layer is None else [layer]
    return {n: run.profile(n, (factor,), prompts=C0_PROMPTS) for n in blocks}


def _draws(subject: object) -> dict[str, object]:
    from hypothesis import strategies as st

    return {"layer": st.integers(min_value=0, max_value=subject.n_blocks - 1)}


C0 = Claim(
    "C0",
    "Causality across depth",
    "Scaling the output of block n changes every later site and leaves every earlier site untouched.",
    section="§1",
    test="For every block n: relative Δ ≤ ZERO_RELATIVE at every site before block n and > ZERO_RELATIVE at block n and "
    "after, except at a site that is scale-invariant in the scaled state (the final norm after the last block), "
    "whose relative Δ must be ≤ INVARIANT_SHARE × the relative Δ at block n.",
    empirical=False,
    statistic="relative Δ nearest its limit (before: largest; at or after: smallest)",
    needs="<=",
    thresholds=named("ZERO_RELATIVE", "INVARIANT_SHARE"),
    judge=lambda profiles, run: judge_c0(profiles, dtype=run.dtype, seed=run.seed),
    measure=_profiles,
    draws=_draws,
    figure="causality_heatmap",
    prompt_share=False,
    under={
        "scale": "block n's output becomes s·h: Δ there is |1 − s|·‖H_n‖; after the last block the final norm sees s·h only "
        "through its ε, so it is checked for that invariance instead of moving",
        "scale-update": "block n's update h − h_in is scaled by s: Δ there is |1 − s|·‖H_n − H_in‖, so every later site moves "
        "unless the block writes nothing; no site is invariant by construction (the final norm must move too)",
        "noise": "h_t + s·‖h_t‖·u_t at block n: relative Δ there is exactly s; random directions are not one multiplier per "
        "token, so the final norm must move too",
        "add": "h_t + s·v at block n: Δ there is |s|·‖v‖·√(tokens); the final norm must move too (a shift is not a scaling)",
        "mean-ablate": f"every token pulled toward μ, the clean mean over C0's first {C0_PROMPTS} prompts: Δ at block n is "
        "s·‖H_n − μ‖; the final norm must move too",
    },
    not_under={
        "positions=first": "Δ leaves out each prompt's first token, the only one edited, so Δ at block n is 0 by construction "
        "and 'every site from block n on moves' cannot hold; the later sites are the experiment (C3, C5)",
    },
)
