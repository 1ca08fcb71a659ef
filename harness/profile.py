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

`reuse_prefix=True` (opt-in) skips the blocks before the intervention: block `layer`'s clean
output, kept from the clean pass, is scaled and blocks layer+1..N are replayed on the stacked rows
with the inputs (attention mask, position ids) each block got in the clean pass, tiled along the
batch. Sites before `layer` then read 0 by construction, not by measurement: keep the default
(the full forward, which measures them) wherever those sites are a claim (C1, Δ≈0 before L).
From `layer` on, the two modes agree to float rounding (tests/test_profile_fast.py).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

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
    reuse_prefix: bool = False,
    factor_batch: int | None = None,
) -> Profile:
    """Measure Δ at every site of `subject` for each factor; see the module docstring.

    `factor_batch` caps the factors stacked in one forward (None: as many as the memory budget
    allows). With 1, every intervened forward has exactly the clean pass's shapes, so sites before
    `layer` come out bit-identical to the clean pass, as in the note's own loop; with more, they can
    carry float32 rounding from batch-shape-dependent matrix kernels (about 1e-7 relative).

    Pass `clean=CleanPass(subject, prompts)` to share one clean pass between many profiles (other
    factors, other layers); `prompts` is then ignored. `reuse_prefix=True` runs only the blocks
    after `layer` per factor; sites before `layer` are then 0 by construction, not measured.
    """
    subject.check_layer(layer)
    if factor_batch is not None and (isinstance(factor_batch, bool) or not isinstance(factor_batch, int) or factor_batch < 1):
        raise InputError(f"factor_batch {factor_batch!r} is not allowed: give a positive integer, or None for the memory budget's choice.")
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
            _run_chunk(subject, chunk, layer, factor_tensor, sums, memory_budget_mb, reuse_prefix, factor_batch)
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
        with Capture(subject) as capture, _BlockInputs(subject) as inputs:
            subject.model(**batch, **_no_cache(subject))
        states = capture.states  # site -> (P, T, D)
        for s, site in enumerate(subject.sites):
            self.clean[s, index] = squared_norm(states[site], selected)
            self.clean_all[s, index] = squared_norm(states[site], everything)
            self.first_norm[s, index] = token_norm_sum(states[site], first)
            self.other_norm[s, index] = token_norm_sum(states[site], selected)
        return _Chunk(index, batch, selected, everything, states, inputs.calls)


@dataclass(frozen=True)
class _Chunk:
    index: torch.Tensor  # (P,) positions of these prompts in the prompt list
    batch: dict[str, torch.Tensor]  # model inputs, (P, T)
    selected: torch.Tensor  # (P, T) weights, first token excluded
    everything: torch.Tensor  # (P, T) weights, first token included
    states: dict[str, torch.Tensor]  # clean site states, site -> (P, T, D)
    # per block, the (args, kwargs) it was called with in the clean pass, hidden state left out
    block_inputs: list[tuple[tuple[Any, ...], dict[str, Any]]]


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


# A chunk is cut when its padded tokens would exceed its real ones by more than this fraction,
# once it holds MIN_CHUNK_ROWS prompts: on lengths 5-50, one padded chunk computes ~1.6x the real
# tokens; tiny chunks would cost more in per-forward overhead than the padding they save.
PAD_SLACK = 0.15
MIN_CHUNK_ROWS = 8


def _prompt_chunks(subject: Subject, tokens: Tokenized, memory_budget_mb: int) -> list[list[int]]:
    """Prompt indices sorted by length, cut so one chunk's clean states fit half the budget and padding stays small."""
    order = sorted(range(len(tokens.ids)), key=lambda i: tokens.lengths[i])
    hidden = _hidden_size(subject)
    per_token = len(subject.sites) * hidden * 4  # clean states kept for every site, float32 upper bound
    budget = memory_budget_mb * 2**20 // 2
    chunks: list[list[int]] = [[]]
    real = 0  # real tokens in the newest chunk
    for i in order:
        width = tokens.lengths[i]  # sorted: the newest prompt is the longest in its chunk
        rows = len(chunks[-1]) + 1
        over_budget = rows * width * per_token > budget
        too_padded = rows > MIN_CHUNK_ROWS and rows * width > (1 + PAD_SLACK) * (real + width)
        if chunks[-1] and (over_budget or too_padded):
            chunks.append([])
            real = 0
        chunks[-1].append(i)
        real += width
    return chunks


def _run_chunk(
    subject: Subject,
    chunk: _Chunk,
    layer: int,
    factors: torch.Tensor,
    sums: _Sums,
    memory_budget_mb: int,
    reuse_prefix: bool,
    factor_batch: int | None = None,
) -> None:
    n_prompts, width = chunk.batch["attention_mask"].shape
    per_factor = n_prompts * width * _hidden_size(subject) * 4 * 24  # activations of one factor's rows, upper bound
    step = max(1, min(len(factors), factor_batch or len(factors), memory_budget_mb * 2**20 // 2 // per_factor))
    start = 0
    while start < len(factors):
        stop = min(start + step, len(factors))
        try:
            run = _replay_factors if reuse_prefix else _run_factors
            run(subject, chunk, layer, factors, start, stop, sums)
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
        subject.model(**stacked, **_no_cache(subject))
    for s, site in enumerate(subject.sites):  # written only after the forward succeeded
        sums.delta[start:stop, s, chunk.index] = results[site][0]
        sums.delta_all[start:stop, s, chunk.index] = results[site][1]


def _replay_factors(subject: Subject, chunk: _Chunk, layer: int, factors: torch.Tensor, start: int, stop: int, sums: _Sums) -> None:
    """factors[start:stop] from block `layer`'s clean output on: rows factor-major, (F·P, T, D).

    Scaling the kept clean output is what `Scale` does to the block's output in a full forward
    (the same multiply in the same dtype), so the blocks before and at `layer` need not run again.
    """
    n_factors = stop - start
    clean = chunk.states[f"block.{layer}"]  # (P, T, D)
    n_prompts = clean.shape[0]
    scale = factors[start:stop].to(dtype=clean.dtype).view(n_factors, 1, 1, 1)  # (F, 1, 1, 1)
    hidden = (clean.unsqueeze(0) * scale).flatten(0, 1)  # (F·P, T, D)
    results: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def reduce(site: str, hidden: torch.Tensor) -> None:
        grid = hidden.view(n_factors, n_prompts, *hidden.shape[1:])  # (F, P, T, D)
        results[site] = (
            squared_distance(chunk.states[site], grid, chunk.selected),
            squared_distance(chunk.states[site], grid, chunk.everything),
        )

    reduce(f"block.{layer}", hidden)
    tiled: dict[int, Any] = {}  # id(value) -> tiled value: blocks share one mask, tile it once
    for index in range(layer + 1, subject.n_blocks):
        args, kwargs = chunk.block_inputs[index]
        args = tuple(_tile(a, n_prompts, n_factors, tiled) for a in args)
        kwargs = {k: _tile(v, n_prompts, n_factors, tiled) for k, v in kwargs.items()}
        output = subject.blocks[index](hidden, *args, **kwargs)
        hidden = output if isinstance(output, torch.Tensor) else output[0]  # transformers 4 blocks return tuples
        reduce(f"block.{index}", hidden)
    if subject.final_norm is not None:
        reduce("final_norm", subject.final_norm(hidden))
    for site, (selected, everything) in results.items():  # sites before `layer` stay 0
        s = subject.site_index(site)
        sums.delta[start:stop, s, chunk.index] = selected
        sums.delta_all[start:stop, s, chunk.index] = everything


class _BlockInputs:
    """Keep each block's (args, kwargs) of one forward, the hidden state (args[0]) left out.

    The hidden state is dropped so that no second copy of the clean states stays alive; the rest
    (attention mask, position ids) is small and shared between blocks.
    """

    def __init__(self, subject: Subject) -> None:
        self.blocks: list[nn.Module] = list(subject.blocks)
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = [((), {}) for _ in self.blocks]
        self._handles: list[RemovableHandle] = []

    def __enter__(self) -> _BlockInputs:
        try:
            for i, block in enumerate(self.blocks):
                self._handles.append(block.register_forward_pre_hook(self._hook(i), with_kwargs=True))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        while self._handles:
            self._handles.pop().remove()

    def _hook(self, i: int) -> Any:
        def keep(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if args:
                self.calls[i] = (args[1:], dict(kwargs))
            else:
                self.calls[i] = ((), {k: v for k, v in kwargs.items() if k != "hidden_states"})

        return keep


def _tile(value: Any, n_prompts: int, n_factors: int, memo: dict[int, Any]) -> Any:
    """Repeat a batch-shaped tensor (B = n_prompts first, 2-D or more) n_factors times along the batch.

    1-D tensors (cache positions) and batch-1 tensors broadcast and are left alone.
    """
    if not isinstance(value, torch.Tensor) or value.ndim < 2 or value.shape[0] != n_prompts or n_factors == 1:
        return value
    if id(value) not in memo:
        memo[id(value)] = value.repeat(n_factors, *([1] * (value.ndim - 1)))  # factor-major like the rows
    return memo[id(value)]


def _no_cache(subject: Subject) -> dict[str, bool]:
    """use_cache=False where the model takes it: a KV cache of every stacked row is never read."""
    return {"use_cache": False} if "use_cache" in inspect.signature(subject.model.forward).parameters else {}


def _hidden_size(subject: Subject) -> int:
    return int(subject.model.config.hidden_size)
