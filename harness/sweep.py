"""Sweeps: Δ at every site for many factors over a set of prompts, in batched forwards.

    prof = profile(subject, ["The cat sat on the mat.", "Paris is in France."], layer=2, factors=[0.5, 1.5])
    clean = CleanPass(subject, prompts)                       # one clean pass shared by many profiles
    a = profile(subject, None, layer=2, factors=[0.5], clean=clean)
    b = profile(subject, None, layer=5, factors=[1.5], clean=clean)

How it runs: prompts are sorted by length and cut into chunks so that padding stays small. Each
chunk's clean forward runs once; its site states are held while they fit the budget (below) and
are recomputed, by the same forward at the same shapes, when a later profile needs them. The
factors then run chunk by chunk, each site reduced to per-(factor, prompt) squared sums inside its
hook, so no hidden state of any factor outlives its forward. One host transfer at the end, where a
non-finite Δ (a factor that overflows the dtype) becomes an InputError naming the factor.

Memory: `memory_budget_mb` bounds what the sweep holds. Half of it holds clean site states between
profiles (`CleanPass.held_bytes`), a quarter bounds one chunk's clean states (chunks are cut to
fit), a quarter the activations of the factors stacked in one forward. Per-prompt sums are small
(F·S·P floats). On CUDA out-of-memory the factor chunk is halved and retried; the result is identical.

Exactness. With `factor_batch=1` (the default) every intervened forward has the clean pass's shapes,
so sites before `layer` equal the clean pass bit for bit (Δ = 0 exactly, as in the note's loop) and
factor 1 gives Δ = 0 at every site, on any machine; a recomputed clean chunk is bit-identical to
the first. `factor_batch=N` stacks N factors along the batch (rows factor-major, f·P + p): matrix
kernels are not batch-invariant on every CPU (MKL's AVX-512 kernels with two threads), so Δ then
carries float32 rounding; measured on an Intel Xeon with the defaults, minilm, 3 prompts, 3 factors:
up to 3.9e-7 of ‖H_clean‖ before the layer and 1.0e-6 at factor 1 after it (0 on random-gpt2).

`reuse_prefix=True` (opt-in) skips the blocks before the intervention (harness.replay): sites before
`layer` then read 0 by construction, not by measurement, so keep the default wherever those sites
are a claim (C1). From `layer` on it equals the full forward bit for bit with factor_batch=1.
"""

from __future__ import annotations

import inspect
import math
import operator
import sys
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from harness.capture import Capture
from harness.errors import InputError
from harness.intervention import Scale
from harness.measurement import first_token_weights, frobenius, squared_distance, squared_norm, token_norm_sum, token_weights
from harness.profile import Profile
from harness.prompts import Tokenized, tokenize
from harness.replay import BlockInputs, Call, replay
from harness.settings import check_factor
from harness.sites import layer_index
from harness.subjects import Subject

Progress = Callable[[int, int], None]  # progress(chunks done, chunks in all)

# Shares of memory_budget_mb, see the module docstring.
HOLD_SHARE = 0.5  # clean states held between profiles
CHUNK_SHARE = 0.25  # one chunk's clean states
FACTOR_SHARE = 0.25  # activations of the factors stacked in one forward


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
    factor_batch: int | None = 1,
    progress: Progress | None = None,
) -> Profile:
    """Measure Δ at every site of `subject` for each factor; see the module docstring.

    `factor_batch` caps the factors stacked in one forward: 1 (the default) keeps every forward at
    the clean pass's shapes, hence bit-exact; None lets the memory budget choose (faster on GPUs).
    Pass `clean=CleanPass(subject, prompts)` to share one clean pass between many profiles (other
    factors, other layers); `prompts` is then ignored. `reuse_prefix=True` runs only the blocks after
    `layer` per factor. `progress(done, total)` is called after each chunk (see `terminal_progress`).
    """
    layer = layer_index(subject, layer)
    factor_list = _factor_list(factors)
    if factor_batch is not None:
        factor_batch = _positive_int("factor_batch", factor_batch, "or None for the memory budget's choice")
    memory_budget_mb = _positive_int("memory_budget_mb", memory_budget_mb, "(MiB), e.g. 2048")
    if clean is None:
        if prompts is None:
            raise InputError("prompts is None and no clean pass was given: pass a list of prompts, or clean=CleanPass(subject, prompts).")
        first = None if progress is None else (lambda done, total: progress(done, 2 * total))
        clean = CleanPass(subject, prompts, memory_budget_mb, record_block_inputs=reuse_prefix, progress=first)
        report = None if progress is None else (lambda done, total: progress(total + done, 2 * total))
    elif clean.subject is not subject:
        raise InputError(f"the clean pass was made on {clean.subject.name}, not on {subject.name}: make one per subject.")
    else:
        report = progress
    sums = _Sums(len(factor_list), len(subject.sites), len(clean.tokens.ids), subject.device)
    factor_tensor = torch.tensor(factor_list, dtype=torch.float32, device=subject.device)
    sweep = _Sweep(subject, layer, factor_tensor, sums, memory_budget_mb, factor_batch, reuse_prefix)
    with torch.inference_mode():
        for number, chunk in enumerate(clean.chunks):
            states, calls = clean.states(number, block_inputs=reuse_prefix)
            sweep.run(chunk, states, calls)
            del states, calls  # a recomputed chunk's states go now, not after the next one is made
            if report is not None:
                report(number + 1, len(clean.chunks))
    return sums.profile(subject, clean, layer, tuple(factor_list), per_prompt, reuse_prefix, factor_batch)


@dataclass(frozen=True)
class Chunk:
    """Prompts that run together: their padded inputs and token weights (small; always kept)."""

    index: torch.Tensor  # (P,) positions of these prompts in the prompt list
    batch: dict[str, torch.Tensor]  # model inputs, (P, T)
    selected: torch.Tensor  # (P, T) weights, first token excluded
    everything: torch.Tensor  # (P, T) weights, first token included


class CleanPass:
    """The clean forward over a prompt set, run once: clean norms, plus site states within the budget.

        clean = CleanPass(subject, prompts)
        a = profile(subject, None, layer=2, factors=[0.5], clean=clean)
        b = profile(subject, None, layer=5, factors=[1.5], clean=clean)    # no second clean pass
        clean.held_bytes          # bytes of tensors it holds, at most half of memory_budget_mb
        clean.release()           # drop the held states; later profiles recompute them, bit-identical

    `record_block_inputs=True` also keeps what each block was called with, for reuse_prefix replays;
    without it a replay recomputes the chunk's clean forward once to record them.
    """

    def __init__(
        self,
        subject: Subject,
        prompts: Sequence[str] | Tokenized,
        memory_budget_mb: int = 2048,
        *,
        record_block_inputs: bool = False,
        progress: Progress | None = None,
    ) -> None:
        if prompts is None:
            raise InputError("prompts is None: pass a list of prompts (strings) for the clean pass.")
        memory_budget_mb = _positive_int("memory_budget_mb", memory_budget_mb, "(MiB), e.g. 2048")
        self.subject = subject
        self.tokens = prompts if isinstance(prompts, Tokenized) else tokenize(subject, prompts)
        self.hold_limit = int(memory_budget_mb * 2**20 * HOLD_SHARE)  # bytes of clean states held between profiles
        self._held: dict[int, tuple[dict[str, torch.Tensor], list[Call] | None, int]] = {}  # chunk -> states, calls, bytes
        n_sites, n_prompts = len(subject.sites), len(self.tokens.ids)

        def zeros() -> torch.Tensor:
            return torch.zeros((n_sites, n_prompts), dtype=torch.float32, device=subject.device)

        # (S, P) per-prompt sums over the selected tokens, first token excluded unless "_all"
        self.clean, self.clean_all, self.first_norm, self.other_norm = zeros(), zeros(), zeros(), zeros()
        chunk_bytes = int(memory_budget_mb * 2**20 * CHUNK_SHARE)
        self.chunks = [self._plan(order) for order in _prompt_chunks(subject, self.tokens, chunk_bytes)]
        with torch.inference_mode():
            for number, chunk in enumerate(self.chunks):
                states, calls = self._forward(chunk, record_block_inputs)
                first = first_token_weights(chunk.batch["attention_mask"])  # (P, T)
                for s, site in enumerate(subject.sites):
                    self.clean[s, chunk.index] = squared_norm(states[site], chunk.selected)
                    self.clean_all[s, chunk.index] = squared_norm(states[site], chunk.everything)
                    self.first_norm[s, chunk.index] = token_norm_sum(states[site], first)
                    self.other_norm[s, chunk.index] = token_norm_sum(states[site], chunk.selected)
                self._hold(number, states, calls)
                if progress is not None:
                    progress(number + 1, len(self.chunks))
        _check_clean_finite(subject, self)

    @property
    def held_bytes(self) -> int:
        """Bytes of the clean site states and block inputs held now (chunk inputs and norms are extra, and small)."""
        return sum(size for _, _, size in self._held.values())

    @property
    def held_chunks(self) -> int:
        """How many chunks' clean states are held; the others are recomputed when a profile needs them."""
        return len(self._held)

    def states(self, number: int, *, block_inputs: bool = False) -> tuple[dict[str, torch.Tensor], list[Call] | None]:
        """Chunk `number`'s clean site states (site -> (P, T, D)) and, on request, its block inputs.

        Held ones are returned as they are; others come from the chunk's clean forward run again at
        the same shapes, so they are bit-identical to the first run's.
        """
        held = self._held.get(number)
        if held is not None and (held[1] is not None or not block_inputs):
            return held[0], (held[1] if block_inputs else None)  # recorded inputs never make a full forward a replay
        with torch.inference_mode():
            states, calls = self._forward(self.chunks[number], block_inputs)
        self._hold(number, states, calls)
        return states, calls

    def release(self) -> None:
        """Drop every held clean state; profiles still work and give the same numbers, recomputing chunks."""
        self._held.clear()

    def _plan(self, order: list[int]) -> Chunk:
        batch = self.tokens.padded(order, self.subject.device)  # (P, T)
        mask = batch["attention_mask"]
        index = torch.tensor(order, device=self.subject.device)
        return Chunk(index, batch, token_weights(mask, False), token_weights(mask, True))

    def _forward(self, chunk: Chunk, record_block_inputs: bool) -> tuple[dict[str, torch.Tensor], list[Call] | None]:
        subject = self.subject
        recording = BlockInputs(subject) if record_block_inputs else nullcontext()
        with Capture(subject) as capture, recording as inputs:
            subject.model(**chunk.batch, **_no_cache(subject))
        return capture.states, (inputs.calls if record_block_inputs else None)  # site -> (P, T, D)

    def _hold(self, number: int, states: dict[str, torch.Tensor], calls: list[Call] | None) -> None:
        """Keep a chunk's states (and calls) if the held total stays within hold_limit; else let them go."""
        size = _tensor_bytes([states, calls])
        previous = self._held.get(number)
        room = self.hold_limit - self.held_bytes + (previous[2] if previous else 0)
        if size <= room:
            self._held[number] = (states, calls, size)


def terminal_progress(label: str, *, force: bool = False, min_chunks: int = 20) -> Progress | None:
    """A progress hook drawing a tqdm bar on stderr, or None when stderr is not a terminal (unless forced).

        profile(subject, prompts, 2, [0.5], progress=terminal_progress("profile"))

    Runs with fewer than `min_chunks` chunks draw nothing (they take seconds), unless forced.
    """
    if not force and not sys.stderr.isatty():
        return None
    bar: Any = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if total < min_chunks and not force:
            return
        if bar is None or bar.total != total:
            from tqdm import tqdm

            if bar is not None:
                bar.close()
            bar = tqdm(total=total, desc=label, unit="chunk", file=sys.stderr, leave=False)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
            bar = None

    return update


# ---------------------------------------------------------------------------------------------


class _Sums:
    """Device-side Δ accumulators, indexed [factor, site, prompt]; read once at the end."""

    def __init__(self, n_factors: int, n_sites: int, n_prompts: int, device: torch.device) -> None:
        self.delta = torch.zeros((n_factors, n_sites, n_prompts), dtype=torch.float32, device=device)
        self.delta_all = torch.zeros_like(self.delta)

    def profile(
        self,
        subject: Subject,
        clean: CleanPass,
        layer: int,
        factors: tuple[float, ...],
        per_prompt: bool,
        reuse_prefix: bool,
        factor_batch: int | None,
    ) -> Profile:
        tensors = {
            "delta": self.delta,
            "delta_all": self.delta_all,
            "clean": clean.clean,
            "clean_all": clean.clean_all,
            "first_norm": clean.first_norm,
            "other_norm": clean.other_norm,
        }
        host = {k: v.double().cpu().numpy() for k, v in tensors.items()}  # the one host sync
        _check_delta_finite(subject, layer, factors, host["delta_all"], host["clean_all"])
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
            reuse_prefix=reuse_prefix,
            factor_batch=factor_batch,
        )


# A chunk is cut when its padded tokens would exceed its real ones by more than this fraction,
# once it holds MIN_CHUNK_ROWS prompts: on lengths 5-50, one padded chunk computes ~1.6x the real
# tokens; tiny chunks would cost more in per-forward overhead than the padding they save.
PAD_SLACK = 0.15
MIN_CHUNK_ROWS = 8


def _prompt_chunks(subject: Subject, tokens: Tokenized, chunk_bytes: int) -> list[list[int]]:
    """Prompt indices sorted by length, cut so one chunk's clean states fit `chunk_bytes` and padding stays small."""
    order = sorted(range(len(tokens.ids)), key=lambda i: tokens.lengths[i])
    per_token = len(subject.sites) * _hidden_size(subject) * 4  # clean states kept for every site, float32 upper bound
    chunks: list[list[int]] = [[]]
    real = 0  # real tokens in the newest chunk
    for i in order:
        width = tokens.lengths[i]  # sorted: the newest prompt is the longest in its chunk
        rows = len(chunks[-1]) + 1
        over_budget = rows * width * per_token > chunk_bytes
        too_padded = rows > MIN_CHUNK_ROWS and rows * width > (1 + PAD_SLACK) * (real + width)
        if chunks[-1] and (over_budget or too_padded):
            chunks.append([])
            real = 0
        chunks[-1].append(i)
        real += width
    return chunks


@dataclass(frozen=True)
class _Sweep:
    """One profile's fixed inputs: every chunk runs through `run`, writing into `sums`."""

    subject: Subject
    layer: int
    factors: torch.Tensor  # (F,) float32 on the device
    sums: _Sums
    memory_budget_mb: int
    factor_batch: int | None
    reuse_prefix: bool

    def run(self, chunk: Chunk, states: dict[str, torch.Tensor], calls: list[Call] | None) -> None:
        """Every factor on one chunk, `step` factors per forward; halve the step on CUDA out-of-memory."""
        n_factors = len(self.factors)
        n_prompts, width = chunk.batch["attention_mask"].shape
        per_factor = n_prompts * width * _hidden_size(self.subject) * 4 * 24  # activations of one factor's rows, upper bound
        fits = int(self.memory_budget_mb * 2**20 * FACTOR_SHARE) // per_factor
        step = max(1, min(n_factors, self.factor_batch or n_factors, fits))
        start = 0
        while start < n_factors:
            stop = min(start + step, n_factors)
            try:
                self._forward(chunk, states, calls, start, stop)
            except torch.OutOfMemoryError:
                if step == 1:
                    raise
                step = max(1, step // 2)  # halve and retry: the sums for [start, stop) were not yet written
                if self.subject.device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            start = stop

    def _forward(self, chunk: Chunk, states: dict[str, torch.Tensor], calls: list[Call] | None, start: int, stop: int) -> None:
        """One forward for factors[start:stop], rows factor-major (F·P, T): the full model, or with reuse_prefix a replay."""
        subject = self.subject
        n_factors, n_prompts = stop - start, chunk.index.shape[0]
        results: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

        def reduce(site: str, hidden: torch.Tensor) -> None:
            grid = hidden.view(n_factors, n_prompts, *hidden.shape[1:])  # (F, P, T, D)
            clean = states[site]
            results[site] = (squared_distance(clean, grid, chunk.selected), squared_distance(clean, grid, chunk.everything))

        if self.reuse_prefix:  # sites before `layer` stay 0
            assert calls is not None, "reuse_prefix needs the chunk's block inputs"
            replay(subject, self.layer, states[f"block.{self.layer}"], calls, self.factors[start:stop], reduce)
        else:
            stacked = {name: value.repeat(n_factors, 1) for name, value in chunk.batch.items()}  # (F·P, T)
            row_factors = self.factors[start:stop].repeat_interleave(n_prompts)  # (F·P,)
            with Scale(subject, self.layer, row_factors), Capture(subject, on_site=reduce):
                subject.model(**stacked, **_no_cache(subject))
        for site, (selected, everything) in results.items():  # written only after the forward succeeded
            s = subject.site_index(site)
            self.sums.delta[start:stop, s, chunk.index] = selected
            self.sums.delta_all[start:stop, s, chunk.index] = everything


def _check_clean_finite(subject: Subject, clean: CleanPass) -> None:
    """Refuse a clean pass whose states overflow the dtype: every Δ measured against it would be meaningless."""
    finite = torch.isfinite(clean.clean_all).all(dim=1)  # (S,) one small reduction, one host sync
    if bool(finite.all()):
        return
    site = subject.sites[int((~finite).nonzero()[0, 0])]
    dtype = str(subject.dtype).removeprefix("torch.")
    raise InputError(
        f"the clean forward of {subject.name} in {dtype} is not finite at {site}: its hidden states leave {dtype}'s range "
        f"(largest value {torch.finfo(subject.dtype).max:.3g}) on these prompts; use dtype float32 or shorter prompts."
    )


def _check_delta_finite(subject: Subject, layer: int, factors: tuple[float, ...], delta: np.ndarray, clean: np.ndarray) -> None:
    """Refuse a factor whose Δ is not finite (its scaled states or their squared sums overflowed).

    delta: (F, S, P) squared sums, first token included; clean: (S, P) the same for the clean states.
    """
    finite = np.isfinite(delta).all(axis=2)  # (F, S)
    if finite.all():
        return
    f, s = (int(i[0]) for i in np.nonzero(~finite))
    dtype = str(subject.dtype).removeprefix("torch.")
    # Δ is finite while |factor − 1|·‖H_layer‖ stays within what the dtype's states and the float32
    # squared sums (whose square root is 1.8e19) can hold; later blocks can overflow sooner.
    largest = float(torch.finfo(subject.dtype).max)
    limit = min(largest, math.sqrt(float(torch.finfo(torch.float32).max)))
    norm = float(np.sqrt(clean[subject.site_index(f"block.{layer}")].max()))  # block `layer`'s largest prompt norm
    allowed = "factors nearer 1"
    if norm > 0:
        allowed = (
            f"|factor| up to about {limit / norm:.2g} (block {layer}'s largest prompt norm is {norm:.3g}; later blocks can overflow sooner)"
        )
    raise InputError(
        f"factor {factors[f]:g} gives a non-finite Δ at {subject.sites[s]} on {subject.name} in {dtype}: {dtype} states hold values "
        f"up to {largest:.3g} and Δ² is summed in float32, so Δ stays finite below about {limit:.3g}. "
        f"Allowed here: {allowed}."
    )


def _factor_list(factors: object) -> list[float]:
    """`factors` as a non-empty list of finite floats; a bare number or string is refused, naming it."""
    if isinstance(factors, str | bytes) or not isinstance(factors, Iterable):
        raise InputError(f"factors {factors!r} is not a list of numbers: pass factors=[...], e.g. factors=[0.5, 1.5].")
    factor_list = [check_factor(f) for f in factors]
    if not factor_list:
        raise InputError("no factors given: pass at least one, e.g. factors=[0.5, 1.5].")
    return factor_list


def _positive_int(name: str, value: object, allowed: str) -> int:
    """`value` as an int >= 1 (integer-like numpy scalars accepted), else InputError naming it."""
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        number = 0
    if isinstance(value, bool) or number < 1:
        raise InputError(f"{name} {value!r} is not allowed: give a positive integer {allowed}.")
    return number


def _tensor_bytes(value: object, seen: set[int] | None = None) -> int:
    """Bytes of the distinct tensors inside nested lists, tuples and dicts (a mask shared by blocks counts once)."""
    seen = set() if seen is None else seen
    if isinstance(value, torch.Tensor):
        if id(value) in seen:
            return 0
        seen.add(id(value))
        return value.nbytes
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list | tuple):
        return sum(_tensor_bytes(v, seen) for v in value)
    return 0


def _no_cache(subject: Subject) -> dict[str, bool]:
    """use_cache=False where the model takes it: a KV cache of every stacked row is never read."""
    return {"use_cache": False} if "use_cache" in inspect.signature(subject.model.forward).parameters else {}


def _hidden_size(subject: Subject) -> int:
    return int(subject.model.config.hidden_size)
