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

Predictions (`predictions=True`, subjects with an LM head; harness.predictions): the clean pass
also reduces each chunk's clean logits once (`CleanPredictions`, held with the chunk's states while
they fit the hold share, else recomputed by the same forward). Each factor's rows of the base
model's last output then go through the head one factor at a time, (P, T, D) -> (P, T, V), and are
reduced at once to per-(factor, prompt) sums: the logits of one factor of one chunk live at a time,
whatever the number of factors. The reducer's float64 working set is cut by vocabulary slices to fit
the factor share (`vocab_chunk_for`); a chunk is planned to hold two (P, T, V) logits (clean and one
factor) in the chunk share. With factor_batch=1 the head sees the clean pass's shapes, so factor 1
gives kl 0, top1_agreement 1 and nll_change 0 exactly. Without `predictions` the head never runs.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import operator
import sys
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from harness.capture import Capture
from harness.errors import InputError
from harness.intervention import ReadComponent, build, component_module, read_direction
from harness.kinds import InterventionSpec
from harness.measurement import first_token_weights, frobenius, squared_distance, squared_norm, token_norm_sum, token_weights
from harness.predictions import CleanPredictions, Predictions, PredictionSums, clean_predictions, reduce_scaled, vocab_chunk_for, with_first
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
    predictions: bool = False,
    include_first_token: bool = False,
    intervention: InterventionSpec | None = None,
) -> Profile:
    """Measure Δ at every site of `subject` for each factor; see the module docstring.

    `factor_batch` caps the factors stacked in one forward: 1 (the default) keeps every forward at
    the clean pass's shapes, hence bit-exact; None lets the memory budget choose (faster on GPUs).
    Pass `clean=CleanPass(subject, prompts)` to share one clean pass between many profiles (other
    factors, other layers); `prompts` is then ignored. `reuse_prefix=True` runs only the blocks after
    `layer` per factor. `progress(done, total)` is called after each chunk (see `terminal_progress`).
    `predictions=True` also measures kl, top1_agreement and nll_change per factor (the subject needs
    an LM head; a given clean pass needs predictions=True too), over every token but each prompt's
    first, or every token with `include_first_token=True`. `intervention` names the kind, positions
    and component (harness.kinds; default: the note's scaling of the block's output); `factors` are
    its strengths, each checked against the kind's range.
    """
    layer = layer_index(subject, layer)
    factor_list = _factor_list(factors)
    spec = (intervention or InterventionSpec()).validated()
    spec.check_strengths(factor_list)
    component_module(subject, layer, spec.component)  # a component the architecture lacks is refused before any forward
    spec, params = _read_direction(subject, spec)  # so is a direction of the wrong width
    if factor_batch is not None:
        factor_batch = _positive_int("factor_batch", factor_batch, "or None for the memory budget's choice")
    memory_budget_mb = _positive_int("memory_budget_mb", memory_budget_mb, "(MiB), e.g. 2048")
    if clean is None:
        if prompts is None:
            raise InputError("prompts is None and no clean pass was given: pass a list of prompts, or clean=CleanPass(subject, prompts).")
        first = None if progress is None else (lambda done, total: progress(done, 2 * total))
        clean = CleanPass(subject, prompts, memory_budget_mb, record_block_inputs=reuse_prefix, progress=first, predictions=predictions)
        report = None if progress is None else (lambda done, total: progress(total + done, 2 * total))
    elif clean.subject is not subject:
        raise InputError(f"the clean pass was made on {clean.subject.name}, not on {subject.name}: make one per subject.")
    else:
        report = progress
    if predictions and not clean.predictions:
        raise InputError("predictions=True needs a clean pass made with them: CleanPass(subject, prompts, predictions=True).")
    if spec.kind == "mean-ablate":
        params = {"mean": clean_mean(clean, layer, spec.component, include_first_token)}
    sums = _Sums(len(factor_list), len(subject.sites), len(clean.tokens.ids), subject.device, predictions)
    factor_tensor = torch.tensor(factor_list, dtype=torch.float32, device=subject.device)
    sweep = _Sweep(subject, layer, factor_tensor, sums, memory_budget_mb, factor_batch, reuse_prefix, spec, params)
    with torch.inference_mode():
        for number, chunk in enumerate(clean.chunks):
            states, calls, clean_logits = clean.chunk_pass(number, block_inputs=reuse_prefix, predictions=predictions)
            if clean_logits is not None:
                clean_logits = with_first(clean_logits, chunk.batch["attention_mask"], include_first_token)
            sweep.run(chunk, states, calls, clean_logits)
            del states, calls, clean_logits  # a recomputed chunk's states go now, not after the next one is made
            if report is not None:
                report(number + 1, len(clean.chunks))
    return sums.profile(subject, clean, layer, tuple(factor_list), per_prompt, reuse_prefix, factor_batch, include_first_token, spec)


def _read_direction(subject: Subject, spec: InterventionSpec) -> tuple[InterventionSpec, dict[str, torch.Tensor]]:
    """add's vector as the sweep's parameter, and the spec with the direction file's sha256; nothing for other kinds."""
    if spec.kind != "add" or spec.direction is None:
        return spec, {}
    vector, sha = read_direction(spec.direction, _hidden_size(subject))
    return dataclasses.replace(spec, direction_sha256=sha), {"direction": vector}


def clean_mean(clean: CleanPass, layer: int, component: str, include_first: bool = False) -> torch.Tensor:
    """(D,) float32: the clean mean of block `layer`'s `component` state over the counted tokens of every prompt.

    Summed in float64; the block's output is read from the clean states, a sub-layer's write from one
    more clean forward per chunk.
    """
    subject = clean.subject
    total, count = torch.zeros(_hidden_size(subject), dtype=torch.float64, device=subject.device), 0.0
    with torch.inference_mode():
        for number, chunk in enumerate(clean.chunks):
            weights = (chunk.everything if include_first else chunk.selected).to(torch.float64)  # (P, T)
            if component == "output":
                hidden = clean.states(number)[0][f"block.{layer}"]
            else:
                with ReadComponent(subject, layer, component) as read:
                    subject.model(**chunk.batch, **_no_cache(subject))
                hidden = read.value
            total += (hidden.to(torch.float64) * weights.unsqueeze(-1)).sum(dim=(0, 1))
            count += float(weights.sum())
    if count == 0:
        raise InputError("mean-ablate has no counted token to average over: give prompts of two tokens or more, or count the first.")
    return (total / count).to(torch.float32)


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
    without it a replay recomputes the chunk's clean forward once to record them. `predictions=True`
    also reduces each chunk's clean logits (the subject needs an LM head), for profile(predictions=True);
    `vocab_chunk` fixes the reducer's vocabulary slice (None: from the memory budget).
    """

    def __init__(
        self,
        subject: Subject,
        prompts: Sequence[str] | Tokenized,
        memory_budget_mb: int = 2048,
        *,
        record_block_inputs: bool = False,
        progress: Progress | None = None,
        predictions: bool = False,
        vocab_chunk: int | None = None,
    ) -> None:
        if prompts is None:
            raise InputError("prompts is None: pass a list of prompts (strings) for the clean pass.")
        memory_budget_mb = _positive_int("memory_budget_mb", memory_budget_mb, "(MiB), e.g. 2048")
        if predictions and subject.head is None:
            raise InputError(f"{subject.name} has {subject.head_note}: predictions cannot be measured on it; pass predictions=False.")
        if vocab_chunk is not None:
            vocab_chunk = _positive_int("vocab_chunk", vocab_chunk, "(vocabulary ids per slice), or None for the memory budget's choice")
        self.subject = subject
        self.predictions = bool(predictions)
        self.vocab_chunk = vocab_chunk
        self.reducer_bytes = int(memory_budget_mb * 2**20 * FACTOR_SHARE)  # the reducer's float64 working set
        self.tokens = prompts if isinstance(prompts, Tokenized) else tokenize(subject, prompts)
        self.hold_limit = int(memory_budget_mb * 2**20 * HOLD_SHARE)  # bytes of clean states held between profiles
        self._held: dict[int, _Held] = {}  # chunk -> what its clean forward left
        n_sites, n_prompts = len(subject.sites), len(self.tokens.ids)

        def zeros() -> torch.Tensor:
            return torch.zeros((n_sites, n_prompts), dtype=torch.float32, device=subject.device)

        # (S, P) per-prompt sums over the selected tokens, first token excluded unless "_all"
        self.clean, self.clean_all, self.first_norm, self.other_norm = zeros(), zeros(), zeros(), zeros()
        chunk_bytes = int(memory_budget_mb * 2**20 * CHUNK_SHARE)
        self.chunks = [self._plan(order) for order in _prompt_chunks(subject, self.tokens, chunk_bytes, self.predictions)]
        with torch.inference_mode():
            for number, chunk in enumerate(self.chunks):
                states, calls, logits = self._forward(chunk, record_block_inputs, self.predictions)
                first = first_token_weights(chunk.batch["attention_mask"])  # (P, T)
                for s, site in enumerate(subject.sites):
                    self.clean[s, chunk.index] = squared_norm(states[site], chunk.selected)
                    self.clean_all[s, chunk.index] = squared_norm(states[site], chunk.everything)
                    self.first_norm[s, chunk.index] = token_norm_sum(states[site], first)
                    self.other_norm[s, chunk.index] = token_norm_sum(states[site], chunk.selected)
                self._hold(number, _Held(states, calls, logits))
                if progress is not None:
                    progress(number + 1, len(self.chunks))
        _check_clean_finite(subject, self)

    @property
    def held_bytes(self) -> int:
        """Bytes of the clean site states and block inputs held now (chunk inputs and norms are extra, and small)."""
        return sum(held.size for held in self._held.values())

    @property
    def held_chunks(self) -> int:
        """How many chunks' clean states are held; the others are recomputed when a profile needs them."""
        return len(self._held)

    def states(self, number: int, *, block_inputs: bool = False) -> tuple[dict[str, torch.Tensor], list[Call] | None]:
        """Chunk `number`'s clean site states (site -> (P, T, D)) and, on request, its block inputs.

        Held ones are returned as they are; others come from the chunk's clean forward run again at
        the same shapes, so they are bit-identical to the first run's.
        """
        states, calls, _ = self.chunk_pass(number, block_inputs=block_inputs)
        return states, calls

    def chunk_pass(
        self, number: int, *, block_inputs: bool = False, predictions: bool = False
    ) -> tuple[dict[str, torch.Tensor], list[Call] | None, CleanPredictions | None]:
        """`states` plus, on request, the chunk's reduced clean logits (first token excluded: see with_first)."""
        if predictions and not self.predictions:
            raise InputError("this clean pass was made without predictions: make it with CleanPass(..., predictions=True).")
        held = self._held.get(number)
        if held is not None and (held.calls is not None or not block_inputs) and (held.logits is not None or not predictions):
            # recorded inputs never make a full forward a replay
            return held.states, (held.calls if block_inputs else None), (held.logits if predictions else None)
        with torch.inference_mode():
            states, calls, logits = self._forward(self.chunks[number], block_inputs, predictions)
        self._hold(number, _Held(states, calls, logits))
        return states, calls, logits

    def release(self) -> None:
        """Drop every held clean state; profiles still work and give the same numbers, recomputing chunks."""
        self._held.clear()

    def _plan(self, order: list[int]) -> Chunk:
        batch = self.tokens.padded(order, self.subject.device)  # (P, T)
        mask = batch["attention_mask"]
        index = torch.tensor(order, device=self.subject.device)
        return Chunk(index, batch, token_weights(mask, False), token_weights(mask, True))

    def _forward(
        self, chunk: Chunk, record_block_inputs: bool, predictions: bool
    ) -> tuple[dict[str, torch.Tensor], list[Call] | None, CleanPredictions | None]:
        subject = self.subject
        recording = BlockInputs(subject) if record_block_inputs else nullcontext()
        with Capture(subject) as capture, recording as inputs:
            out = subject.model(**chunk.batch, **_no_cache(subject))
        logits = None
        if predictions:  # (P, T, D) -> (P, T, V) -> per-position data; the last output already passed the final norm
            ids, mask = chunk.batch["input_ids"], chunk.batch["attention_mask"]
            vocab_chunk = self.vocab_chunk or vocab_chunk_for(self.reducer_bytes, ids.numel(), _vocab_size(subject))
            logits = clean_predictions(subject.logits(out.last_hidden_state), ids, mask, False, vocab_chunk=vocab_chunk)
        return capture.states, (inputs.calls if record_block_inputs else None), logits  # site -> (P, T, D)

    def _hold(self, number: int, held: _Held) -> None:
        """Keep what a chunk's forward left if the held total stays within hold_limit; else let it go."""
        previous = self._held.get(number)
        room = self.hold_limit - self.held_bytes + (previous.size if previous else 0)
        if held.size <= room:
            self._held[number] = held


@dataclass(frozen=True, eq=False)
class _Held:
    """One chunk's clean forward, kept between profiles: site states, block inputs, reduced clean logits."""

    states: dict[str, torch.Tensor]  # site -> (P, T, D)
    calls: list[Call] | None
    logits: CleanPredictions | None

    @property
    def size(self) -> int:
        logits = [] if self.logits is None else [getattr(self.logits, f.name) for f in fields(self.logits)]
        return _tensor_bytes([self.states, self.calls, logits])


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

    def __init__(self, n_factors: int, n_sites: int, n_prompts: int, device: torch.device, predictions: bool = False) -> None:
        self.delta = torch.zeros((n_factors, n_sites, n_prompts), dtype=torch.float32, device=device)
        self.delta_all = torch.zeros_like(self.delta)
        # per (factor, prompt) prediction sums, already on the host (harness.predictions); None: not measured
        self.predictions: PredictionSums | None = None
        if predictions:
            zeros = np.zeros((n_factors, n_prompts))
            self.predictions = PredictionSums(zeros, zeros.copy(), zeros.copy(), np.zeros(n_prompts), np.zeros(n_prompts))

    def add_predictions(self, start: int, index: np.ndarray, part: PredictionSums) -> None:
        """Write one chunk's sums for factors start.. and the prompts at `index`."""
        assert self.predictions is not None
        stop = start + part.kl.shape[0]
        for name in ("kl", "top1", "nll"):
            getattr(self.predictions, name)[start:stop, index] = getattr(part, name)
        self.predictions.positions[index] = part.positions
        self.predictions.next_positions[index] = part.next_positions

    def profile(
        self,
        subject: Subject,
        clean: CleanPass,
        layer: int,
        factors: tuple[float, ...],
        per_prompt: bool,
        reuse_prefix: bool,
        factor_batch: int | None,
        include_first: bool = False,
        spec: InterventionSpec | None = None,
    ) -> Profile:
        spec = spec or InterventionSpec()
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
        measured = {}
        if self.predictions is not None:
            measured = _prediction_fields(subject, Predictions.from_sums(self.predictions, factors, include_first), per_prompt)
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
            intervention=spec.kind,
            positions=spec.positions,
            component=spec.component,
            direction_sha256=spec.direction_sha256,
            **measured,
        )


def _prediction_fields(subject: Subject, result: Predictions, per_prompt: bool) -> dict[str, object]:
    """Profile's prediction fields; a masked LM's nll_change is left out (its logits at t predict token t itself)."""
    next_token = getattr(subject.head, "predicts", "next token") == "next token"
    return {
        "kl": result.kl,
        "top1_agreement": result.top1_agreement,
        "nll_change": result.nll_change if next_token else None,
        "prompt_kl": result.kl_per_prompt if per_prompt else None,
        "prompt_top1_agreement": result.top1_per_prompt if per_prompt else None,
        "prompt_nll_change": result.nll_per_prompt if per_prompt and next_token else None,
        "prediction_positions": result.positions,
        "next_token_positions": result.next_positions if next_token else None,
        "predictions_include_first": result.include_first,
    }


# A chunk is cut when its padded tokens would exceed its real ones by more than this fraction,
# once it holds MIN_CHUNK_ROWS prompts: on lengths 5-50, one padded chunk computes ~1.6x the real
# tokens; tiny chunks would cost more in per-forward overhead than the padding they save.
PAD_SLACK = 0.15
MIN_CHUNK_ROWS = 8


def _prompt_chunks(subject: Subject, tokens: Tokenized, chunk_bytes: int, predictions: bool = False) -> list[list[int]]:
    """Prompt indices sorted by length, cut so one chunk's clean states fit `chunk_bytes` and padding stays small."""
    order = sorted(range(len(tokens.ids)), key=lambda i: tokens.lengths[i])
    per_token = len(subject.sites) * _hidden_size(subject) * 4  # clean states kept for every site, float32 upper bound
    if predictions:  # the clean logits held and one factor's, (P, T, V) each, float32 upper bound
        per_token += 2 * _vocab_size(subject) * 4
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
    spec: InterventionSpec
    params: dict[str, torch.Tensor]

    def run(self, chunk: Chunk, states: dict[str, torch.Tensor], calls: list[Call] | None, logits: CleanPredictions | None = None) -> None:
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
                self._forward(chunk, states, calls, logits, start, stop)
            except torch.OutOfMemoryError:
                if step == 1:
                    raise
                step = max(1, step // 2)  # halve and retry: the sums for [start, stop) were not yet written
                if self.subject.device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            start = stop

    def _forward(
        self,
        chunk: Chunk,
        states: dict[str, torch.Tensor],
        calls: list[Call] | None,
        logits: CleanPredictions | None,
        start: int,
        stop: int,
    ) -> None:
        """One forward for factors[start:stop], rows factor-major (F·P, T): the full model, or with reuse_prefix a replay.

        With clean `logits`, each factor's rows of the last output then go through the head and the reducer, one factor at a time.
        """
        subject = self.subject
        n_factors, n_prompts = stop - start, chunk.index.shape[0]
        results: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

        def reduce(site: str, hidden: torch.Tensor) -> None:
            grid = hidden.view(n_factors, n_prompts, *hidden.shape[1:])  # (F, P, T, D)
            clean = states[site]
            results[site] = (squared_distance(clean, grid, chunk.selected), squared_distance(clean, grid, chunk.everything))

        row_factors = self.factors[start:stop].repeat_interleave(n_prompts)  # (F·P,)
        edit = build(subject, self.spec, self.layer, row_factors, **self.params)
        edit.attention_mask = chunk.batch["attention_mask"].repeat(n_factors, 1)  # (F·P, T) for `positions`
        edit.prompt_ids = chunk.index.repeat(n_factors)  # (F·P,) noise's seeds follow the prompt, not the row
        if self.reuse_prefix:  # sites before `layer` stay 0
            assert calls is not None, "reuse_prefix needs the chunk's block inputs"
            entering = subject.sites[subject.site_index(f"block.{self.layer}") - 1]  # embed or block.layer-1
            last = replay(subject, self.layer, states[entering], calls, n_factors, edit, reduce)
        else:
            stacked = {name: value.repeat(n_factors, 1) for name, value in chunk.batch.items()}  # (F·P, T)
            with edit, Capture(subject, on_site=reduce):
                last = subject.model(**stacked, **_no_cache(subject)).last_hidden_state  # (F·P, T, D)
        parts = []
        if logits is not None:  # one factor's (P, T, V) logits at a time, at the clean pass's shapes
            parts = [reduce_scaled(logits, subject.logits(last[f * n_prompts : (f + 1) * n_prompts])) for f in range(n_factors)]
        del last
        for site, (selected, everything) in results.items():  # written only after the forward succeeded
            s = subject.site_index(site)
            self.sums.delta[start:stop, s, chunk.index] = selected
            self.sums.delta_all[start:stop, s, chunk.index] = everything
        if parts:
            index = chunk.index.cpu().numpy()
            for f, part in enumerate(parts):
                self.sums.add_predictions(start + f, index, part)


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


def _vocab_size(subject: Subject) -> int:
    return int(subject.model.config.vocab_size)
