"""The note's thresholds, each with its reason (also in README, "How the claims are judged").


ZERO_RELATIVE = 1e-4 (float32; 1e-2 for bf16/fp16)
    "Δ ≈ 0" (§3.1): relative Δ = Δ / ‖H_clean‖ at or below floating-point noise. A correct hook
    changes nothing before the scaled block; a leak of the scaling into an earlier site moves it in
    proportion to |1 − s|, which is ≥ FACTOR_BAND = 0.1 for every factor a claim uses, three orders
    above this limit. Two forwards of the same shapes are bit-identical in almost every session,
    but some sessions under transformers 5.25.0 (three seen) measure 1.16e-05 before the scaled
    block on random-gpt2: the clean pass alone differs from every edited forward, the same for
    factors 0.5, 1.5 and 0.568 and for every block, so not the hook (the factor would change a
    leak). The limit sits below γ_n = n·u ≈ 1.8e-4, the float32 error bound of one dot product
    over GPT-2's MLP width n = 3072 (u = 2^-24); the earlier 1e-5 refuted C0 in those sessions.
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
"""

from __future__ import annotations

from harness.judge.claim import Threshold
from harness.judge.verdict import PROMPT_SHARE

ZERO_RELATIVE = {"float32": 1e-4, "bfloat16": 1e-2, "float16": 1e-2}
JUMP_RELATIVE = 0.05
JUMP_OVER_NOISE = 1e3
FACTOR_BAND = 0.1
GROWTH_STEP = 1.0
NONLINEAR_MIN = 0.02
SLIGHT_DROP_MAX = 0.5
DROP_MIN = 1e-3
FIRST_TOKEN_RATIO = 10.0
INVARIANT_SHARE = 0.05
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


def zero_relative(dtype: str) -> float:
    """ZERO_RELATIVE for a resolved dtype name ('float32', 'bfloat16', 'float16'); 'auto' must be resolved first."""
    try:
        return ZERO_RELATIVE[dtype]
    except KeyError:
        raise ValueError(
            f"dtype {dtype!r} has no ZERO_RELATIVE limit: give the subject's resolved dtype, one of {', '.join(ZERO_RELATIVE)}"
        ) from None


def named(*names: str) -> dict[str, Threshold]:
    """The thresholds `names` as a claim's record holds them: value and reason (this module's docstring, in short)."""
    return {name: Threshold(THRESHOLDS[name], REASONS[name]) for name in names}


REASONS = {
    "ZERO_RELATIVE": "rounding of the dtype (1.16e-05 measured on one CPU): a leak of the scaling would move a site by about |1 − s| ≥ 0.1",
    "JUMP_RELATIVE": "scaling by s gives |1 − s| at the block, so any factor outside FACTOR_BAND clears 5 %",
    "JUMP_OVER_NOISE": "the jump stands three orders of magnitude above whatever moved before it",
    "FACTOR_BAND": "factors this close to 1 barely change anything: no visible change to judge",
    "GROWTH_STEP": "'keeps increasing': every step multiplies Δ by more than 1",
    "NONLINEAR_MIN": "'non-linearly': a 2 % departure from the straight line, so exact linear growth fails",
    "SLIGHT_DROP_MAX": "'slight': a fall by more than half would be the healing the note says does not happen",
    "DROP_MIN": "a drop above numerical noise (0.1 %)",
    "FIRST_TOKEN_RATIO": "'an order of magnitude'",
    "INVARIANT_SHARE": "a norm applied to s·h sees the scaling only through its ε: below 5 % once σ² ≥ 60ε",
    "KL_MATERIAL": "over a third of the ~0.27 nats/token between GPT-2 small and medium",
    "TOP1_MAX": "one changed greedy choice in ten changes a 20-token continuation with probability 88 %",
}
