"""Measurement: pure functions of captured tensors. No hooks, no models, no state.

    w = token_weights(attention_mask, include_first=False)    # (P, T) 1.0 where a token counts
    sq = squared_distance(clean, intervened, w)                # (F, P) per factor and prompt
    delta = frobenius(sq)                                      # (F,)  over all prompts

The note's Δ (§2.2) at a site is ‖H_clean − H_scaled‖_F over tokens × hidden dims. Here the tokens
are the selected ones: padding never counts, and the first token counts only on request (§3.2).
Over a set of prompts Δ is the Frobenius norm over all their selected tokens, that is
sqrt(Σ_prompts Δ_prompt²), so one long prompt weighs more than one short one, as in a single
Frobenius norm over the concatenated tokens.
All sums accumulate in float32 whatever the model's dtype; a Δ that leaves float32's range
(about 1.8e19, the square root of its largest value) is reported by the sweep as an error.
Δ / ‖H_clean‖ over a profile is `harness.measure.record.relative` (numpy only).
"""

from __future__ import annotations

import numpy as np
import torch


def token_weights(attention_mask: torch.Tensor, include_first: bool) -> torch.Tensor:
    """(P, T) float32 weights: 1 for real tokens, 0 for padding and, unless included, the first token.

    The first token is the first real one of each row, wherever padding puts it.
    """
    real = attention_mask.to(torch.bool)  # (P, T)
    if include_first:
        return real.to(torch.float32)
    first = real & (real.to(torch.int32).cumsum(dim=1) == 1)  # (P, T) true at the first real token
    return (real & ~first).to(torch.float32)


def first_token_weights(attention_mask: torch.Tensor) -> torch.Tensor:
    """(P, T) float32: 1 at each row's first real token only."""
    return token_weights(attention_mask, include_first=True) - token_weights(attention_mask, include_first=False)


def squared_distance(clean: torch.Tensor, intervened: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ over selected tokens and hidden dims of (clean − intervened)², per factor and prompt.

    clean: (P, T, D); intervened: (F, P, T, D) or (P, T, D); weights: (P, T). Returns (F, P) or (P,).
    """
    diff = intervened.to(torch.float32) - clean.to(torch.float32)  # broadcasts over F
    return (diff.square().sum(dim=-1) * weights).sum(dim=-1)


def squared_norm(states: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ over selected tokens and hidden dims of states², per prompt. states: (P, T, D) -> (P,)."""
    return (states.to(torch.float32).square().sum(dim=-1) * weights).sum(dim=-1)


def token_norm_sum(states: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ over selected tokens of each token's L2 norm, per prompt. (P, T, D) -> (P,)."""
    return (torch.linalg.vector_norm(states.to(torch.float32), dim=-1) * weights).sum(dim=-1)


def frobenius(squared: np.ndarray, axis: int = -1) -> np.ndarray:
    """Combine per-prompt squared sums into one Frobenius norm: sqrt(Σ squared) along `axis`."""
    return np.sqrt(np.sum(squared, axis=axis))
