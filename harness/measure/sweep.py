"""Sweeps: Δ at every site for many factors (an intervention's strengths) over a corpus, in batched forwards.

    prof = profile(subject, ["The cat sat on the mat.", "Paris is in France."], layer=2, factors=[0.5, 1.5])
    clean = CleanPass(subject, prompts)                       # harness.measure.clean: shared by many profiles
    a = profile(subject, None, layer=2, factors=[0.5], clean=clean)
    b = profile(subject, None, layer=5, factors=[0.2], clean=clean, intervention=InterventionSpec("noise"))

How it runs: over the clean pass's chunks (harness.measure.clean), the factors run chunk by chunk,
the intervention (harness.intervene) entered for each forward with one strength per row; each site
is reduced to per-(factor, prompt) squared sums inside its hook, so no hidden state of any factor
outlives its forward. One host transfer at the end, where a non-finite Δ (a factor that overflows
the dtype) becomes an InputError naming the factor. On CUDA out-of-memory the factor chunk is
halved and retried; the result is identical. Per-prompt sums are small (F·S·P floats).

Exactness. With `factor_batch=1` (the default) every intervened forward has the clean pass's shapes,
so sites before `layer` equal the clean pass bit for bit (Δ = 0 exactly, as in the note's loop) and
a strength that changes nothing gives Δ = 0 at every site, on any machine. `factor_batch=N` stacks
N factors along the batch (rows factor-major, f·P + p): matrix kernels are not batch-invariant on
every CPU (MKL's AVX-512 kernels with two threads), so Δ then carries float32 rounding; measured
on an Intel Xeon with the defaults, minilm, 3 prompts, 3 factors: up to 3.9e-7 of ‖H_clean‖ before
the layer and 1.0e-6 at factor 1 after it (0 on random-gpt2).

`reuse_prefix=True` (opt-in) skips the blocks before the intervention (harness.measure.replay): sites before
`layer` then read 0 by construction, not by measurement, so keep the default wherever those sites
are a claim (C1). From `layer` on it equals the full forward bit for bit with factor_batch=1.

Predictions (`predictions=True`, subjects with an LM head; harness.measure.predictions): each
factor's rows of the base model's last output go through the head one factor at a time, (P, T, D)
-> (P, T, V), and are reduced at once to per-(factor, prompt) sums against the clean pass's reduced
logits: the logits of one factor of one chunk live at a time, whatever the number of factors. The
reducer's float64 working set is cut by vocabulary slices to fit the factor share
(`vocab_chunk_for`). With factor_batch=1 the head sees the clean pass's shapes, so factor 1 gives
kl 0, top1_agreement 1 and nll_change 0 exactly. Without `predictions` the head never runs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from harness.errors import InputError
from harness.intervene.edits import build, read_direction
from harness.intervene.kinds import InterventionSpec
from harness.intervene.protocol import component_module
from harness.measure.capture import Capture
from harness.measure.clean import FACTOR_SHARE, Chunk, CleanPass, Progress, clean_mean, hidden_size, no_cache, positive_int
from harness.measure.guard import check_same_subject, guarded
from harness.measure.norms import frobenius, squared_distance
from harness.measure.predictions import CleanPredictions, Predictions, PredictionSums, reduce_scaled, with_first
from harness.measure.record import Profile
from harness.measure.replay import Call, replay
from harness.model import Subject
from harness.model.prompts import Tokenized
from harness.model.sites import layer_index
from harness.settings import check_factor

__all__ = ["CleanPass", "profile"]


@guarded  # eval mode, no foreign hook, one profile of a subject at a time, weights as loaded
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
    intervention: InterventionSpec | str | None = None,
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
    and component (harness.intervene.kinds; default: the note's scaling of the block's output), or is a kind's
    name (`"noise"`: that kind at every position of the block's output); `factors` are its strengths, each checked
    against the kind's range.
    """
    layer = layer_index(subject, layer)
    factor_list = _factor_list(factors)
    spec = _spec(intervention).validated()
    spec.check_strengths(factor_list)
    component_module(subject, layer, spec.component)  # a component the architecture lacks is refused before any forward
    spec, params = _read_direction(subject, spec)  # so is a direction of the wrong width
    if factor_batch is not None:
        factor_batch = positive_int("factor_batch", factor_batch, "or None for the memory budget's choice")
    memory_budget_mb = positive_int("memory_budget_mb", memory_budget_mb, "(MiB), e.g. 2048")
    if clean is None:
        if prompts is None:
            raise InputError("prompts is None and no clean pass was given: pass a list of prompts, or clean=CleanPass(subject, prompts).")
        first = None if progress is None else (lambda done, total: progress(done, 2 * total))
        clean = CleanPass(subject, prompts, memory_budget_mb, record_block_inputs=reuse_prefix, progress=first, predictions=predictions)
        report = None if progress is None else (lambda done, total: progress(total + done, 2 * total))
    else:
        check_same_subject(clean.subject, subject)
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


def _spec(intervention: object) -> InterventionSpec:
    """`intervention` as a spec: None is the note's scaling, a kind's name that kind with the defaults."""
    if intervention is None:
        return InterventionSpec()
    if isinstance(intervention, str):
        return InterventionSpec(kind=intervention)  # validated() names an unknown kind and the allowed ones
    if not isinstance(intervention, InterventionSpec):
        raise InputError(
            f"intervention={intervention!r} is a {type(intervention).__name__}: give a kind's name (\"noise\") or "
            "harness.intervene.kinds.InterventionSpec(kind, positions, component, direction)."
        )
    return intervention


def _read_direction(subject: Subject, spec: InterventionSpec) -> tuple[InterventionSpec, dict[str, torch.Tensor]]:
    """add's vector as the sweep's parameter, and the spec with the direction file's sha256; nothing for other kinds."""
    if spec.kind != "add" or spec.direction is None:
        return spec, {}
    vector, sha = read_direction(spec.direction, hidden_size(subject))
    return dataclasses.replace(spec, direction_sha256=sha), {"direction": vector}


# ---------------------------------------------------------------------------------------------


class _Sums:
    """Device-side Δ accumulators, indexed [factor, site, prompt]; read once at the end."""

    def __init__(self, n_factors: int, n_sites: int, n_prompts: int, device: torch.device, predictions: bool = False) -> None:
        self.delta = torch.zeros((n_factors, n_sites, n_prompts), dtype=torch.float32, device=device)
        self.delta_all = torch.zeros_like(self.delta)
        # per (factor, prompt) prediction sums, already on the host (harness.measure.predictions); None: not measured
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
        per_factor = n_prompts * width * hidden_size(self.subject) * 4 * 24  # activations of one factor's rows, upper bound
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
            grid = hidden.to(states[site].device).view(n_factors, n_prompts, *hidden.shape[1:])  # (F, P, T, D), gathered under a device map
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
                last = subject.model(**stacked, **no_cache(subject)).last_hidden_state  # (F·P, T, D)
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
