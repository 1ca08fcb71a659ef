"""C4 (§3.3, §4): at the last site before the unembedding Δ drops slightly.

Not applicable when the scaled block is the last one: nothing before the final site moved.
Factors within FACTOR_BAND of 1 are left out of the drawn ones: the claim is about a visible change.
"""

from __future__ import annotations

import numpy as np

from harness.judge.claim import Claim
from harness.judge.verdict import Verdict, aggregate_of, judge_rule, ratio
from harness.measure.record import Profile
from harness.note.spans import drop_between, final_readings
from harness.note.thresholds import DROP_MIN, SLIGHT_DROP_MAX, named


def judge_c4(prof: Profile, factor_index: int = 0, *, seed: int = 0) -> Verdict:
    readings = final_readings(prof)
    final, previous = readings["note"]

    def statistic(d: np.ndarray, c: np.ndarray, a: np.ndarray) -> np.ndarray:  # the drop 1 − Δ(final)/Δ(previous)
        return 1.0 - ratio(d[..., final], d[..., previous])

    def rule(d: np.ndarray, c: np.ndarray, a: np.ndarray) -> bool:
        return bool(DROP_MIN < statistic(d, c, a) <= SLIGHT_DROP_MAX)

    drop = float(statistic(*aggregate_of(prof, factor_index)))
    other = {
        name: {"final": prof.sites[f], "previous": prof.sites[p], "drop": drop_between(prof.delta[factor_index], f, p)}
        for name, (f, p) in readings.items()
    }
    word = "drops" if drop > 0 else "rises"
    return judge_rule(
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



def drop_after_layer(subject: object, layer: int) -> str | None:
    """C4 compares the final site with block N−2, which must come at or after the scaled block."""
    if layer <= subject.n_blocks - 2:
        return None
    if subject.n_blocks < 2:
        return (
            f"{subject.name} is too shallow for C4: it has {subject.n_blocks} block, and the drop is read from block N−2 "
            "to the final site, which needs at least 2 blocks"
        )
    return (
        f"the drop is read from block {subject.n_blocks - 2} to the final site, and block {subject.n_blocks - 2} comes "
        f"before the scaled block {layer} (Δ = 0 there): give a layer of at most {subject.n_blocks - 2}"
    )


C4 = Claim(
    "C4",
    "A slight drop at the final block",
    "At the last site before the unembedding, Δ is slightly lower than one site earlier, for every factor from 0.5 to 1.5.",
    section="§3.3, §4",
    test="DROP_MIN < 1 − Δ(final)/Δ(previous) ≤ SLIGHT_DROP_MAX, with final = the final norm's output "
    "(HuggingFace's last hidden state); the raw last block is reported beside it.",
    empirical=True,
    statistic="drop 1 − Δ(final)/Δ(previous)",
    needs="within",
    thresholds=named("DROP_MIN", "SLIGHT_DROP_MAX"),
    judge=lambda prof, run: judge_c4(prof, seed=run.seed),
    applies=drop_after_layer,
    layer_map=True,
    intervention_map=True,
    under={
        kind: "the final norm against the site before it, whatever made the deviation: the rule reads only the last two "
        "sites, so it means the same under every kind (" + why + ")"
        for kind, why in {
            "scale": "the note's case",
            "scale-update": "the deviation left by a rescaled update",
            "noise": "the deviation left by noise",
            "add": "the deviation left by a direction",
            "mean-ablate": "the deviation left by an ablation toward the mean",
        }.items()
    },
)
