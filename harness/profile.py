"""Profiles: Δ at every site for many factors over a set of prompts, in batched forwards.

    prof = profile(subject, ["The cat sat on the mat.", "Paris is in France."], layer=2, factors=[0.5, 1.5])
    prof.sites                       # ("embed", "block.0", ..., "final_norm")
    prof.delta[f, s]                 # Δ for factor f at site s, first token excluded (§3.2)
    prof.delta_all_tokens[f, s]      # the same with the first token included
    prof.clean_norm[s]               # ‖H_clean‖ over the same tokens, for relative Δ

How it runs: prompts are sorted by length and cut into chunks so that padding stays small; each
chunk's clean pass runs once and its site states stay on the device; the factors then run stacked
along the batch (factor-major: row f*P + p), chunked to `memory_budget_mb`, and every site is
reduced to per-(factor, prompt) squared sums inside its hook, so no hidden state of any factor
outlives its forward. One host transfer at the end. On CUDA out-of-memory the factor chunk is
halved and retried; the result is identical.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from harness.capture import Capture
from harness.errors import InputError
from harness.intervention import Scale
from harness.measurement import (
    first_token_weights,
    frobenius,
    relative,
    squared_distance,
    squared_norm,
    token_norm_sum,
    token_weights,
)
from harness.prompts import Tokenized, tokenize
from harness.settings import check_factor
from harness.subjects import Subject


@dataclass(frozen=True)
class Profile:
    """Δ per factor and site over a prompt set; arrays are float64 numpy. See the module docstring."""

    model: str
    revision: str
    layer: int
    sites: tuple[str, ...]
    factors: tuple[float, ...]
    prompt_lengths: tuple[int, ...]  # tokens per prompt, in the order given
    delta: np.ndarray  # (F, S) first token excluded
    delta_all_tokens: np.ndarray  # (F, S) first token included
    clean_norm: np.ndarray  # (S,) first token excluded
    clean_norm_all_tokens: np.ndarray  # (S,)
    first_token_norm: np.ndarray  # (S,) mean L2 norm of the first token of each prompt (clean)
    other_token_norm: np.ndarray  # (S,) mean L2 norm of the other tokens (clean)
    # per prompt, in the order given; None unless per_prompt=True
    prompt_delta: np.ndarray | None = field(default=None, repr=False)  # (F, S, P)
    prompt_delta_all_tokens: np.ndarray | None = field(default=None, repr=False)  # (F, S, P)
    prompt_clean_norm: np.ndarray | None = field(default=None, repr=False)  # (S, P)

    @property
    def relative_delta(self) -> np.ndarray:
        """(F, S) Δ / ‖H_clean‖, first token excluded."""
        return relative(self.delta, self.clean_norm)

    @property
    def relative_delta_all_tokens(self) -> np.ndarray:
        return relative(self.delta_all_tokens, self.clean_norm_all_tokens)

    def site(self, name: str) -> int:
        if name not in self.sites:
            raise InputError(f"site {name!r} is not in this profile: choose one of {', '.join(self.sites)}.")
        return self.sites.index(name)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: lists of floats, keyed as in the CLI's --json output."""
        out: dict[str, object] = {
            "model": self.model,
            "revision": self.revision,
            "layer": self.layer,
            "sites": list(self.sites),
            "factors": list(self.factors),
            "prompt_lengths": list(self.prompt_lengths),
            "delta": self.delta.tolist(),
            "delta_all_tokens": self.delta_all_tokens.tolist(),
            "relative_delta": self.relative_delta.tolist(),
            "relative_delta_all_tokens": self.relative_delta_all_tokens.tolist(),
            "clean_norm": self.clean_norm.tolist(),
            "clean_norm_all_tokens": self.clean_norm_all_tokens.tolist(),
            "first_token_norm": self.first_token_norm.tolist(),
            "other_token_norm": self.other_token_norm.tolist(),
        }
        if self.prompt_delta is not None:
            out["prompt_delta"] = self.prompt_delta.tolist()
            out["prompt_delta_all_tokens"] = self.prompt_delta_all_tokens.tolist()
            out["prompt_clean_norm"] = self.prompt_clean_norm.tolist()
        return out


def profile(
    subject: Subject,
    prompts: Sequence[str] | Tokenized | None,
    layer: int,
    factors: Sequence[float],
    *,
    per_prompt: bool = False,
    memory_budget_mb: int = 2048,
    clean: CleanPass | None = None,
) -> Profile:
    """Measure Δ at every site of `subject` for each factor; see the module docstring.

    Pass `clean=CleanPass(subject, prompts)` to share one clean pass between many profiles (other
    factors, other layers); `prompts` is then ignored.
    """
    subject.check_layer(layer)
    factor_list = [check_factor(f) for f in factors]
    if not factor_list:
        raise InputError("no factors given: pass at least one, e.g. factors=[0.5, 1.5].")
    if clean is None:
        clean = CleanPass(subject, prompts, memory_budget_mb)
    elif clean.subject is not subject:
        raise InputError(f"the clean pass was made on {clean.subject.name}, not on {subject.name}: make one per subject.")
    sums = _Sums(len(factor_list), len(subject.sites), len(clean.tokens.ids), subject.device)
    factor_tensor = torch.tensor(factor_list, dtype=torch.float32, device=subject.device)
    with torch.inference_mode():
        for chunk in clean.chunks:
            _run_chunk(subject, chunk, layer, factor_tensor, sums, memory_budget_mb)
    return sums.profile(subject, clean, layer, tuple(factor_list), per_prompt)


class CleanPass:
    """The clean forward over a prompt set, run once: site states per chunk plus clean norms.

    clean = CleanPass(subject, prompts)
    a = profile(subject, None, layer=2, factors=[0.5], clean=clean)
    b = profile(subject, None, layer=5, factors=[1.5], clean=clean)    # no second clean pass
    """

    def __init__(self, subject: Subject, prompts: Sequence[str] | Tokenized, memory_budget_mb: int = 2048) -> None:
        self.subject = subject
        self.tokens = prompts if isinstance(prompts, Tokenized) else tokenize(subject, prompts)
        n_sites, n_prompts = len(subject.sites), len(self.tokens.ids)

        def zeros() -> torch.Tensor:
            return torch.zeros((n_sites, n_prompts), dtype=torch.float32, device=subject.device)

        self.clean, self.clean_all, self.first_norm, self.other_norm = zeros(), zeros(), zeros(), zeros()
        with torch.inference_mode():
            self.chunks = [self._run(order) for order in _prompt_chunks(subject, self.tokens, memory_budget_mb)]

    def _run(self, order: list[int]) -> _Chunk:
        subject = self.subject
        batch = self.tokens.padded(order, subject.device)  # (P, T)
        mask = batch["attention_mask"]
        selected, everything, first = token_weights(mask, False), token_weights(mask, True), first_token_weights(mask)
        index = torch.tensor(order, device=subject.device)
        with Capture(subject) as capture:
            subject.model(**batch)
        states = capture.states  # site -> (P, T, D)
        for s, site in enumerate(subject.sites):
            self.clean[s, index] = squared_norm(states[site], selected)
            self.clean_all[s, index] = squared_norm(states[site], everything)
            self.first_norm[s, index] = token_norm_sum(states[site], first)
            self.other_norm[s, index] = token_norm_sum(states[site], selected)
        return _Chunk(index, batch, selected, everything, states)


@dataclass(frozen=True)
class _Chunk:
    index: torch.Tensor  # (P,) positions of these prompts in the prompt list
    batch: dict[str, torch.Tensor]  # model inputs, (P, T)
    selected: torch.Tensor  # (P, T) weights, first token excluded
    everything: torch.Tensor  # (P, T) weights, first token included
    states: dict[str, torch.Tensor]  # clean site states, site -> (P, T, D)


# ---------------------------------------------------------------------------------------------


class _Sums:
    """Device-side Δ accumulators, indexed [factor, site, prompt]; read once at the end."""

    def __init__(self, n_factors: int, n_sites: int, n_prompts: int, device: torch.device) -> None:
        self.delta = torch.zeros((n_factors, n_sites, n_prompts), dtype=torch.float32, device=device)
        self.delta_all = torch.zeros_like(self.delta)

    def profile(self, subject: Subject, clean: CleanPass, layer: int, factors: tuple[float, ...], per_prompt: bool) -> Profile:
        tensors = {
            "delta": self.delta,
            "delta_all": self.delta_all,
            "clean": clean.clean,
            "clean_all": clean.clean_all,
            "first_norm": clean.first_norm,
            "other_norm": clean.other_norm,
        }
        host = {k: v.double().cpu().numpy() for k, v in tensors.items()}  # the one host sync
        lengths = np.asarray(clean.tokens.lengths, dtype=np.float64)
        return Profile(
            model=subject.name,
            revision=subject.revision,
            layer=layer,
            sites=subject.sites,
            factors=factors,
            prompt_lengths=clean.tokens.lengths,
            delta=frobenius(host["delta"]),
            delta_all_tokens=frobenius(host["delta_all"]),
            clean_norm=frobenius(host["clean"]),
            clean_norm_all_tokens=frobenius(host["clean_all"]),
            first_token_norm=host["first_norm"].sum(axis=-1) / len(lengths),
            other_token_norm=host["other_norm"].sum(axis=-1) / max(float((lengths - 1).sum()), 1.0),
            prompt_delta=np.sqrt(host["delta"]) if per_prompt else None,
            prompt_delta_all_tokens=np.sqrt(host["delta_all"]) if per_prompt else None,
            prompt_clean_norm=np.sqrt(host["clean"]) if per_prompt else None,
        )


def _prompt_chunks(subject: Subject, tokens: Tokenized, memory_budget_mb: int) -> list[list[int]]:
    """Prompt indices sorted by length, cut so one chunk's clean states fit half the budget."""
    order = sorted(range(len(tokens.ids)), key=lambda i: tokens.lengths[i])
    hidden = _hidden_size(subject)
    per_token = len(subject.sites) * hidden * 4  # clean states kept for every site, float32 upper bound
    budget = memory_budget_mb * 2**20 // 2
    chunks: list[list[int]] = [[]]
    for i in order:
        width = tokens.lengths[i]  # sorted: the newest prompt is the longest in its chunk
        if chunks[-1] and (len(chunks[-1]) + 1) * width * per_token > budget:
            chunks.append([])
        chunks[-1].append(i)
    return chunks


def _run_chunk(subject: Subject, chunk: _Chunk, layer: int, factors: torch.Tensor, sums: _Sums, memory_budget_mb: int) -> None:
    n_prompts, width = chunk.batch["attention_mask"].shape
    per_factor = n_prompts * width * _hidden_size(subject) * 4 * 24  # activations of one factor's rows, upper bound
    step = max(1, min(len(factors), memory_budget_mb * 2**20 // 2 // per_factor))
    start = 0
    while start < len(factors):
        stop = min(start + step, len(factors))
        try:
            _run_factors(subject, chunk, layer, factors, start, stop, sums)
        except torch.OutOfMemoryError:
            if step == 1:
                raise
            step = max(1, step // 2)  # halve and retry: the sums for [start, stop) were not yet written
            if subject.device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        start = stop


def _run_factors(subject: Subject, chunk: _Chunk, layer: int, factors: torch.Tensor, start: int, stop: int, sums: _Sums) -> None:
    """One batched forward for factors[start:stop]: rows are factor-major, (F·P, T)."""
    n_factors = stop - start
    n_prompts = chunk.batch["input_ids"].shape[0]
    stacked = {name: value.repeat(n_factors, 1) for name, value in chunk.batch.items()}  # (F·P, T)
    row_factors = factors[start:stop].repeat_interleave(n_prompts)  # (F·P,)
    results: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def reduce(site: str, hidden: torch.Tensor) -> None:
        grid = hidden.view(n_factors, n_prompts, *hidden.shape[1:])  # (F, P, T, D)
        clean = chunk.states[site]
        results[site] = (squared_distance(clean, grid, chunk.selected), squared_distance(clean, grid, chunk.everything))

    with Scale(subject, layer, row_factors), Capture(subject, on_site=reduce):
        subject.model(**stacked)
    for s, site in enumerate(subject.sites):  # written only after the forward succeeded
        sums.delta[start:stop, s, chunk.index] = results[site][0]
        sums.delta_all[start:stop, s, chunk.index] = results[site][1]


def _hidden_size(subject: Subject) -> int:
    return int(subject.model.config.hidden_size)
