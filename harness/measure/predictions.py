"""Effect on predictions: KL, top-1 agreement and NLL change of the scaled model's next-token output.

    clean = clean_predictions(clean_logits, input_ids, attention_mask, include_first=False)  # once per prompt chunk
    sums = reduce_scaled(clean, scaled_logits)          # (F·P, T, V) factor-major or (F, P, T, V) -> (F, P) sums
    result = Predictions.from_sums(join([...]), factors=(0.5, 1.5), include_first=False)
    result.kl, result.top1_agreement, result.nll_change  # (F,) float64 each; result.to_dict() is JSON-ready

Which positions count (the same tokens as Δ, issue 10):
    kl, top1_agreement  real tokens; the first real token of each prompt only when included.
                        A prompt of T tokens gives positions 1..T−1 (0..T−1 with the first included).
    nll_change          those positions that have a next real token in the prompt, whose id is the target:
                        positions 1..T−2 (0..T−2 with the first included).

The measures, per counted position t, with p = softmax of the logits over the vocabulary:
    kl     KL(p_clean ‖ p_scaled) = Σ_v p_clean·(log p_clean − log p_scaled), in nats
    top1   [argmax clean logits == argmax scaled logits]; ties go to the lowest token id
    nll    NLL_scaled − NLL_clean of the next token = log p_clean(next) − log p_scaled(next), nats/token
Each is summed per (factor, prompt) along with the number of positions, so chunks of prompts and of
factors combine exactly; the aggregate is Σ sums / Σ counts over all prompts (a long prompt weighs more).

Arithmetic, and why:
- float64. Logits (float32, bf16, fp16) are cast exactly to float64 slice by slice. In float32 the
  log-normalizer of a 50k vocabulary carries an absolute error of ~1e-6 nats, the size of the KL of
  a small factor, so float32 cannot meet the issue's 1e-6 relative agreement; float64 can, and costs
  twice the bytes of a vocabulary slice, which `vocab_chunk_for` accounts for.
- One factor at a time, each factor's (P, T, V) logits through the very same function, shapes and
  slices as the clean ones. Identical clean and scaled logits then give identical log-probabilities
  bit for bit, so their difference is exactly 0: factor 1 in exact mode gives kl 0.0, top1 1.0 and
  nll 0.0 by construction, with or without vocabulary splitting. It also bounds the working memory
  to one factor's slice, whatever F is.
- The vocabulary may be split into slices of `vocab_chunk` ids: a first pass keeps each slice's
  maximum and Σ exp(x − max), combined into logsumexp; a second computes the KL terms and the
  argmax per slice. Splitting changes only float64 rounding; the argmax is the same exactly.
- KL is not clamped. Per position it is a sum of signed terms; when two distributions differ only
  in their last bits the float64 result may be negative by ~1e-16 nats. Clamping would hide that and
  add a bias; the aggregate KL of a real perturbation is many orders above it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch

from harness.errors import InputError
from harness.measure.norms import token_weights

COMPUTE_DTYPES = (torch.float64, torch.float32)
# Live (P, T, vocab_chunk) tensors of the compute dtype at the reducer's peak: the clean and scaled
# log-probabilities and their difference, plus a boolean mask and (P, T) vectors (one more, rounding up).
# tests/test_predictions.py measures the peak and checks it against this count.
WORKING_COPIES = 4


# ---------------------------------------------------------------------------------------------
# Which positions count


def position_weights(attention_mask: torch.Tensor, include_first: bool) -> torch.Tensor:
    """(P, T) float32, 1 where a position counts for kl and top1: real tokens, the first only if included.

    The first token is each row's first real token, wherever padding puts it (same tokens as Δ).
    """
    return token_weights(attention_mask, include_first)


def next_token_weights(attention_mask: torch.Tensor, include_first: bool) -> torch.Tensor:
    """(P, T) float32, 1 where a position counts for nll_change: it counts for kl and its next token is real."""
    real = attention_mask.to(torch.bool)  # (P, T)
    has_next = torch.zeros_like(real)
    has_next[:, :-1] = real[:, 1:]  # the target of position t is token t+1
    return position_weights(attention_mask, include_first) * has_next.to(torch.float32)


def next_token_targets(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(P, T) int64: the id of token t+1 where it is real, 0 elsewhere (a valid index that never counts)."""
    real = attention_mask.to(torch.bool)
    targets = torch.zeros_like(input_ids, dtype=torch.int64)
    targets[:, :-1] = torch.where(real[:, 1:], input_ids[:, 1:].to(torch.int64), 0)
    return targets


# ---------------------------------------------------------------------------------------------
# The reducer


@dataclass(frozen=True)
class CleanPredictions:
    """What one prompt chunk keeps of its clean forward: logits as the model gave them, plus per-position data.

    Build it with `clean_predictions`; it fixes the vocabulary split and compute dtype every factor reuses.
    """

    logits: torch.Tensor  # (P, T, V) model dtype, as returned by the head
    log_normalizer: torch.Tensor  # (P, T) compute dtype, logsumexp over the vocabulary
    top1: torch.Tensor  # (P, T) int64, argmax of the logits, lowest id on ties
    target_logprob: torch.Tensor  # (P, T) compute dtype, log p_clean(next token); 0 where none
    targets: torch.Tensor  # (P, T) int64, see next_token_targets
    weights: torch.Tensor  # (P, T) float32, position_weights
    next_weights: torch.Tensor  # (P, T) float32, next_token_weights
    vocab_chunk: int | None  # vocabulary ids per slice; None: the whole vocabulary at once
    dtype: torch.dtype  # compute dtype


@dataclass(frozen=True, eq=False)
class PredictionSums:
    """Per (factor, prompt) sums over counted positions; chunks combine with `join`. All float64 numpy."""

    kl: np.ndarray  # (F, P) Σ_t w·KL, nats
    top1: np.ndarray  # (F, P) Σ_t w·[argmax unchanged]
    nll: np.ndarray  # (F, P) Σ_t w'·(NLL_scaled − NLL_clean), nats
    positions: np.ndarray  # (P,) Σ_t w
    next_positions: np.ndarray  # (P,) Σ_t w'


def clean_predictions(
    logits: torch.Tensor,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    include_first: bool,
    *,
    vocab_chunk: int | None = None,
    dtype: torch.dtype = torch.float64,
) -> CleanPredictions:
    """Reduce a prompt chunk's clean logits (P, T, V) once; every factor of that chunk reuses the result."""
    if logits.ndim != 3 or logits.shape[:2] != input_ids.shape or input_ids.shape != attention_mask.shape:
        raise InputError(
            f"logits of shape {tuple(logits.shape)}, input_ids {tuple(input_ids.shape)} and attention_mask "
            f"{tuple(attention_mask.shape)} do not fit: give logits (P, T, V) and ids and mask (P, T)."
        )
    if dtype not in COMPUTE_DTYPES:
        raise InputError(f"compute dtype {dtype} is not allowed: use torch.float64 (exact to 1e-6) or torch.float32.")
    vocab_chunk = _check_vocab_chunk(vocab_chunk, logits.shape[-1])
    lse, top1 = _normalizer_and_top1(logits, vocab_chunk, dtype)
    targets = next_token_targets(input_ids, attention_mask).to(logits.device)
    return CleanPredictions(
        logits=logits,
        log_normalizer=lse,
        top1=top1,
        target_logprob=_target_logprob(logits, targets, lse),
        targets=targets,
        weights=position_weights(attention_mask, include_first).to(logits.device),
        next_weights=next_token_weights(attention_mask, include_first).to(logits.device),
        vocab_chunk=vocab_chunk,
        dtype=dtype,
    )


def with_first(clean: CleanPredictions, attention_mask: torch.Tensor, include_first: bool) -> CleanPredictions:
    """The same reduced clean logits counting (or not) each prompt's first token: only the weights change.

    So one clean pass serves both readings; nothing of the logits is recomputed.
    """
    device = clean.logits.device
    return replace(
        clean,
        weights=position_weights(attention_mask, include_first).to(device),
        next_weights=next_token_weights(attention_mask, include_first).to(device),
    )


def reduce_scaled(clean: CleanPredictions, scaled_logits: torch.Tensor) -> PredictionSums:
    """Sums of kl, top1 and nll per (factor, prompt) for the scaled logits of F factors.

    scaled_logits: (F, P, T, V), or (F·P, T, V) factor-major (row f·P + p is factor f, prompt p),
    any float dtype. Holds at most one factor's slice in the compute dtype at a time.
    """
    p, t, v = clean.logits.shape
    if scaled_logits.ndim == 3 and scaled_logits.shape[0] % p == 0:
        scaled_logits = scaled_logits.unflatten(0, (-1, p))  # (F, P, T, V), a view: nothing copied
    if scaled_logits.ndim != 4 or scaled_logits.shape[1:] != clean.logits.shape:
        raise InputError(
            f"scaled logits of shape {tuple(scaled_logits.shape)} do not match the clean chunk {(p, t, v)}: "
            f"give (F, {p}, {t}, {v}) or (F·{p}, {t}, {v}) with row f·{p} + p for factor f, prompt p."
        )
    n_factors = scaled_logits.shape[0]
    kl = torch.zeros(n_factors, p, dtype=clean.dtype, device=clean.logits.device)  # (F, P)
    top1 = torch.zeros_like(kl)
    nll = torch.zeros_like(kl)
    counted = clean.weights > 0  # (P, T)
    counted_next = clean.next_weights > 0
    for f in range(n_factors):
        scaled = scaled_logits[f]  # (P, T, V): the clean chunk's shape, so the same kernels run on both
        lse, argmax = _normalizer_and_top1(scaled, clean.vocab_chunk, clean.dtype)
        per_position_kl = _kl(clean, scaled, lse)  # (P, T)
        nll_change = clean.target_logprob - _target_logprob(scaled, clean.targets, lse)  # (P, T)
        # where(), not a product: a position that does not count may hold inf or nan, and 0·inf is nan
        kl[f] = torch.where(counted, per_position_kl, 0.0).sum(dim=-1)
        top1[f] = (counted & (argmax == clean.top1)).to(clean.dtype).sum(dim=-1)
        nll[f] = torch.where(counted_next, nll_change, 0.0).sum(dim=-1)
    return PredictionSums(
        kl=_numpy(kl),
        top1=_numpy(top1),
        nll=_numpy(nll),
        positions=_numpy(clean.weights.sum(dim=-1)),
        next_positions=_numpy(clean.next_weights.sum(dim=-1)),
    )


def join(parts: Sequence[PredictionSums], along: Literal["factors", "prompts"]) -> PredictionSums:
    """Concatenate sums of factor chunks (same prompts) or of prompt chunks (same factors)."""
    if not parts:
        raise InputError("join() got no sums: give at least one PredictionSums.")
    if along == "factors":  # same prompts: their counts are those of any part
        axis, positions, next_positions = 0, parts[0].positions, parts[0].next_positions
    else:
        axis = 1
        positions = np.concatenate([s.positions for s in parts])
        next_positions = np.concatenate([s.next_positions for s in parts])
    return PredictionSums(
        kl=np.concatenate([s.kl for s in parts], axis=axis),
        top1=np.concatenate([s.top1 for s in parts], axis=axis),
        nll=np.concatenate([s.nll for s in parts], axis=axis),
        positions=positions,
        next_positions=next_positions,
    )


def vocab_chunk_for(budget_bytes: int, positions: int, vocab_size: int, dtype: torch.dtype = torch.float64) -> int | None:
    """Vocabulary ids per slice so the reducer's working set fits `budget_bytes`; None if the whole vocabulary fits.

    positions: P·T of one prompt chunk (the number of factors does not enter: they run one at a time).
    The working set is WORKING_COPIES tensors of (P, T, slice) in the compute dtype.
    """
    per_id = WORKING_COPIES * positions * torch.tensor([], dtype=dtype).element_size()  # bytes per vocabulary id
    chunk = budget_bytes // per_id
    if chunk < 1:
        raise InputError(
            f"a memory budget of {budget_bytes / 2**20:.3g} MB cannot hold one vocabulary id for {positions} positions "
            f"({per_id} bytes): raise memory_budget_mb or use fewer prompts per chunk."
        )
    return None if chunk >= vocab_size else int(chunk)


# ---------------------------------------------------------------------------------------------
# Final aggregation


@dataclass(frozen=True, eq=False)
class Predictions:
    """The three measures per factor, over all prompts and per prompt. JSON via `to_dict`."""

    factors: tuple[float, ...]
    include_first: bool
    kl: np.ndarray  # (F,) mean KL over counted positions of all prompts, nats
    top1_agreement: np.ndarray  # (F,) share of counted positions whose argmax is unchanged
    nll_change: np.ndarray  # (F,) mean NLL_scaled − NLL_clean over next-token positions, nats/token
    kl_per_prompt: np.ndarray  # (F, P); nan for a prompt with no counted position
    top1_per_prompt: np.ndarray  # (F, P)
    nll_per_prompt: np.ndarray  # (F, P); nan for a prompt with no next-token position
    positions: np.ndarray  # (P,) counted positions per prompt
    next_positions: np.ndarray  # (P,)

    @classmethod
    def from_sums(cls, sums: PredictionSums, factors: Sequence[float], include_first: bool) -> Predictions:
        if len(factors) != sums.kl.shape[0]:
            raise InputError(f"{len(factors)} factors given for sums of {sums.kl.shape[0]} factors: give one factor per row.")
        n, n_next = sums.positions.sum(), sums.next_positions.sum()
        return cls(
            factors=tuple(float(f) for f in factors),
            include_first=include_first,
            kl=_mean(sums.kl.sum(axis=1), n),
            top1_agreement=_mean(sums.top1.sum(axis=1), n),
            nll_change=_mean(sums.nll.sum(axis=1), n_next),
            kl_per_prompt=_mean(sums.kl, sums.positions),
            top1_per_prompt=_mean(sums.top1, sums.positions),
            nll_per_prompt=_mean(sums.nll, sums.next_positions),
            positions=sums.positions,
            next_positions=sums.next_positions,
        )

    def to_dict(self, per_prompt: bool = False) -> dict[str, object]:
        out: dict[str, object] = {
            "factors": list(self.factors),
            "include_first_token": self.include_first,
            "kl": _json(self.kl),
            "top1_agreement": _json(self.top1_agreement),
            "nll_change": _json(self.nll_change),
            "positions": int(self.positions.sum()),
            "next_token_positions": int(self.next_positions.sum()),
        }
        if per_prompt:
            out |= {
                "kl_per_prompt": _json(self.kl_per_prompt),
                "top1_agreement_per_prompt": _json(self.top1_per_prompt),
                "nll_change_per_prompt": _json(self.nll_per_prompt),
            }
        return out


# ---------------------------------------------------------------------------------------------
# helpers


def _check_vocab_chunk(vocab_chunk: int | None, vocab_size: int) -> int | None:
    if vocab_chunk is None:
        return None
    if isinstance(vocab_chunk, bool) or not isinstance(vocab_chunk, int) or vocab_chunk < 1:
        raise InputError(f"vocab_chunk={vocab_chunk!r} is not allowed: give a positive int, or None for the whole vocabulary.")
    return None if vocab_chunk >= vocab_size else vocab_chunk


def _slices(vocab_size: int, vocab_chunk: int | None) -> list[slice]:
    step = vocab_size if vocab_chunk is None else vocab_chunk
    return [slice(a, min(a + step, vocab_size)) for a in range(0, vocab_size, step)]


def _cast(logits: torch.Tensor, ids: slice, dtype: torch.dtype) -> torch.Tensor:
    # (P, T, slice): always a fresh contiguous copy, so callers may work in place without touching the
    # model's logits, and clean and scaled slices take the same kernels whatever the input strides
    return logits[..., ids].to(dtype=dtype, memory_format=torch.contiguous_format, copy=True)


def _normalizer_and_top1(logits: torch.Tensor, vocab_chunk: int | None, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """logsumexp (P, T) in `dtype` and argmax (P, T) of logits (P, T, V), slice by slice."""
    maxima, sums, best, top1 = [], [], None, None
    for ids in _slices(logits.shape[-1], vocab_chunk):
        x = _cast(logits, ids, dtype)  # (P, T, slice)
        m, i = x.max(dim=-1)  # the first maximal index on ties (documented for torch.max along a dim)
        if best is None:
            best, top1 = m, i + ids.start
        else:  # strictly greater: an equal maximum in a later slice has a higher id and loses
            better = m > best
            best, top1 = torch.where(better, m, best), torch.where(better, i + ids.start, top1)
        safe = torch.where(torch.isfinite(m), m, 0.0)  # an all −inf slice: exp(−inf − 0) = 0, not nan
        maxima.append(safe)
        sums.append(x.sub_(safe.unsqueeze(-1)).exp_().sum(dim=-1))
    m = torch.stack(maxima).amax(dim=0)  # (P, T)
    total = sum(s * torch.exp(mi - m) for s, mi in zip(sums, maxima, strict=True))
    return m + torch.log(total), top1


def _kl(clean: CleanPredictions, scaled: torch.Tensor, scaled_lse: torch.Tensor) -> torch.Tensor:
    """(P, T): Σ_v p_clean·(log p_clean − log p_scaled), slice by slice, in the compute dtype."""
    total = torch.zeros_like(scaled_lse)
    for ids in _slices(scaled.shape[-1], clean.vocab_chunk):
        total += _kl_slice(clean, scaled, scaled_lse, ids)
    return total


def _kl_slice(clean: CleanPredictions, scaled: torch.Tensor, scaled_lse: torch.Tensor, ids: slice) -> torch.Tensor:
    # A function of its own so that its three (P, T, slice) tensors die on return, before the next slice.
    log_p = _cast(clean.logits, ids, clean.dtype).sub_(clean.log_normalizer.unsqueeze(-1))  # (P, T, slice)
    log_q = _cast(scaled, ids, clean.dtype).sub_(scaled_lse.unsqueeze(-1))
    diff = log_p - log_q  # exactly 0 where the two log-probabilities are the same number
    del log_q
    p = log_p.exp_()
    diff.masked_fill_(p == 0, 0.0)  # p·log(p/q) = 0 where p = 0, also where q = 0 too (−inf − −inf)
    return diff.mul_(p).sum(dim=-1)  # (P, T)


def _target_logprob(logits: torch.Tensor, targets: torch.Tensor, lse: torch.Tensor) -> torch.Tensor:
    """(P, T): log p(target) = logit[target] − logsumexp, in the dtype of lse."""
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (P, T), exact in any float dtype
    return picked.to(lse.dtype) - lse


def _numpy(values: torch.Tensor) -> np.ndarray:
    return values.detach().to("cpu", torch.float64).numpy()


def _mean(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    counts = np.broadcast_to(np.asarray(counts, dtype=np.float64), np.shape(sums))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(counts > 0, sums / np.where(counts > 0, counts, 1.0), np.nan)


def _json(values: np.ndarray) -> list:
    return [_json(v) for v in values] if np.ndim(values) > 1 else [float(v) if math.isfinite(v) else None for v in values]
