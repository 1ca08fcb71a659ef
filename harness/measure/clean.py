"""The clean pass: a corpus's clean forward, run once, in chunks that fit a memory budget.

    clean = CleanPass(subject, prompts)           # one clean pass shared by many profiles (harness.measure.sweep)
    clean.states(0)                               # chunk 0's clean site states, held or recomputed bit-identically
    clean.held_bytes, clean.release()             # what it holds; drop it (later profiles recompute it)
    mu = clean_mean(clean, layer=2, component="output")   # mean-ablate's μ over the counted tokens

Prompts are sorted by length and cut into chunks so that padding stays small. Each chunk's clean
forward runs once; its site states are held while they fit the budget and are recomputed, by the
same forward at the same shapes, when a later profile needs them, so they are bit-identical.

Memory: `memory_budget_mb` bounds what a sweep holds. Half of it holds clean site states between
profiles (`CleanPass.held_bytes`), a quarter bounds one chunk's clean states (chunks are cut to
fit), a quarter the activations of the factors stacked in one forward (harness.measure.sweep).
With `predictions=True` each chunk's clean logits are reduced once (`CleanPredictions`) and held
with its states while they fit the hold share; a chunk is planned to hold two (P, T, V) logits.
"""

from __future__ import annotations

import inspect
import operator
import sys
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, fields
from typing import Any

import torch

from harness.errors import InputError
from harness.intervene.protocol import ReadComponent
from harness.measure.capture import Capture
from harness.measure.guard import guarded
from harness.measure.norms import first_token_weights, squared_norm, token_norm_sum, token_weights
from harness.measure.predictions import CleanPredictions, clean_predictions, vocab_chunk_for
from harness.measure.replay import BlockInputs, Call
from harness.model import Subject
from harness.model.prompts import Tokenized, tokenize

Progress = Callable[[int, int], None]  # progress(chunks done, chunks in all)

# Shares of memory_budget_mb, see the module docstring.
HOLD_SHARE = 0.5  # clean states held between profiles
CHUNK_SHARE = 0.25  # one chunk's clean states
FACTOR_SHARE = 0.25  # activations of the factors stacked in one forward


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

    @guarded
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
        memory_budget_mb = positive_int("memory_budget_mb", memory_budget_mb, "(MiB), e.g. 2048")
        if predictions and subject.head is None:
            raise InputError(f"{subject.name} has {subject.head_note}: predictions cannot be measured on it; pass predictions=False.")
        if vocab_chunk is not None:
            vocab_chunk = positive_int("vocab_chunk", vocab_chunk, "(vocabulary ids per slice), or None for the memory budget's choice")
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
        self.chunks = [self._plan(order) for order in prompt_chunks(subject, self.tokens, chunk_bytes, self.predictions)]
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
            out = subject.model(**chunk.batch, **no_cache(subject))
        logits = None
        if predictions:  # (P, T, D) -> (P, T, V) -> per-position data; the last output already passed the final norm
            ids, mask = chunk.batch["input_ids"], chunk.batch["attention_mask"]
            vocab_chunk = self.vocab_chunk or vocab_chunk_for(self.reducer_bytes, ids.numel(), vocab_size(subject))
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
        return tensor_bytes([self.states, self.calls, logits])


def clean_mean(clean: CleanPass, layer: int, component: str, include_first: bool = False) -> torch.Tensor:
    """(D,) float32: the clean mean of block `layer`'s `component` state over the counted tokens of every prompt.

    Summed in float64; the block's output is read from the clean states, a sub-layer's write from one
    more clean forward per chunk.
    """
    subject = clean.subject
    total, count = torch.zeros(hidden_size(subject), dtype=torch.float64, device=subject.device), 0.0
    with torch.inference_mode():
        for number, chunk in enumerate(clean.chunks):
            weights = (chunk.everything if include_first else chunk.selected).to(torch.float64)  # (P, T)
            if component == "output":
                hidden = clean.states(number)[0][f"block.{layer}"]
            else:
                with ReadComponent(subject, layer, component) as read:
                    subject.model(**chunk.batch, **no_cache(subject))
                hidden = read.value
            total += (hidden.to(torch.float64) * weights.unsqueeze(-1)).sum(dim=(0, 1))
            count += float(weights.sum())
    if count == 0:
        raise InputError("mean-ablate has no counted token to average over: give prompts of two tokens or more, or count the first.")
    return (total / count).to(torch.float32)


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


# A chunk is cut when its padded tokens would exceed its real ones by more than this fraction,
# once it holds MIN_CHUNK_ROWS prompts: on lengths 5-50, one padded chunk computes ~1.6x the real
# tokens; tiny chunks would cost more in per-forward overhead than the padding they save.
PAD_SLACK = 0.15
MIN_CHUNK_ROWS = 8


def prompt_chunks(subject: Subject, tokens: Tokenized, chunk_bytes: int, predictions: bool = False) -> list[list[int]]:
    """Prompt indices sorted by length, cut so one chunk's clean states fit `chunk_bytes` and padding stays small."""
    order = sorted(range(len(tokens.ids)), key=lambda i: tokens.lengths[i])
    per_token = len(subject.sites) * hidden_size(subject) * 4  # clean states kept for every site, float32 upper bound
    if predictions:  # the clean logits held and one factor's, (P, T, V) each, float32 upper bound
        per_token += 2 * vocab_size(subject) * 4
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


def positive_int(name: str, value: object, allowed: str) -> int:
    """`value` as an int >= 1 (integer-like numpy scalars accepted), else InputError naming it."""
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        number = 0
    if isinstance(value, bool) or number < 1:
        raise InputError(f"{name} {value!r} is not allowed: give a positive integer {allowed}.")
    return number


def tensor_bytes(value: object, seen: set[int] | None = None) -> int:
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
        return sum(tensor_bytes(v, seen) for v in value)
    return 0


def no_cache(subject: Subject) -> dict[str, bool]:
    """use_cache=False where the model takes it: a KV cache of every stacked row is never read."""
    return {"use_cache": False} if "use_cache" in inspect.signature(subject.model.forward).parameters else {}


def hidden_size(subject: Subject) -> int:
    return int(subject.model.config.hidden_size)


def vocab_size(subject: Subject) -> int:
    return int(subject.model.config.vocab_size)
