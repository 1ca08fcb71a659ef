"""harness.measure.predictions against an independent per-prompt computation on a random GPT-2 with an LM head.

The reference runs each prompt alone (batch of one, no padding), scales block 2's output with its own
forward hook, takes torch.log_softmax over the whole vocabulary in float64, and loops over positions
with F.kl_div and F.cross_entropy. The reducer gets one padded batch of all prompts, the scaled rows
of every factor stacked factor-major (row f·P + p), as the batched sweep will give it.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from harness.errors import InputError
from harness.measure.predictions import (
    WORKING_COPIES,
    Predictions,
    clean_predictions,
    join,
    next_token_weights,
    position_weights,
    reduce_scaled,
    vocab_chunk_for,
)

LAYER = 2
VOCAB = 1000
LENGTHS = (9, 5, 12, 2, 1, 7)  # a 1-token and a 2-token prompt: no position / no next-token position
FACTORS = (0.5, 0.9, 1.1, 1.5)


@contextmanager
def scaled_block(model: torch.nn.Module, factor: float | torch.Tensor) -> Iterator[None]:
    """Multiply block LAYER's output by factor (a scalar, or one value per batch row)."""

    def hook(module, args, output):
        hidden = output if isinstance(output, torch.Tensor) else output[0]  # (B, T, D)
        scale = factor.view(-1, 1, 1) if isinstance(factor, torch.Tensor) else factor
        hidden.mul_(scale)

    handle = model.transformer.h[LAYER].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=4, n_embd=64, n_head=4, vocab_size=VOCAB, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config).eval()


@pytest.fixture(scope="module")
def prompts() -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return [torch.randint(0, VOCAB, (n,), generator=gen) for n in LENGTHS]


@pytest.fixture(scope="module")
def batch(model, prompts) -> dict[str, torch.Tensor]:
    """One right-padded batch: clean logits (P, T, V) and scaled logits (F·P, T, V), factor-major."""
    p, t = len(prompts), max(LENGTHS)
    ids = torch.full((p, t), 7)  # pad id: any token, the mask hides it
    mask = torch.zeros(p, t, dtype=torch.int64)
    for i, x in enumerate(prompts):
        ids[i, : len(x)], mask[i, : len(x)] = x, 1
    with torch.no_grad():
        clean = model(input_ids=ids, attention_mask=mask).logits
        rows = torch.tensor(FACTORS).repeat_interleave(p)  # (F·P,) row f·P + p has factor f
        with scaled_block(model, rows):
            scaled = model(input_ids=ids.repeat(len(FACTORS), 1), attention_mask=mask.repeat(len(FACTORS), 1)).logits
    return {"ids": ids, "mask": mask, "clean": clean, "scaled": scaled}


def one_at_a_time(model, prompts, factors) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
    """Clean logits per prompt [(T, V)] and scaled logits [factor][prompt] (T, V), each a batch of one, own hook."""
    with torch.no_grad():
        clean = [model(input_ids=x[None]).logits[0] for x in prompts]
        scaled = []
        for s in factors:
            with scaled_block(model, s):
                scaled.append([model(input_ids=x[None]).logits[0] for x in prompts])
    return clean, scaled


def from_padded_batch(batch, prompts) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
    """The padded batch's own logits, cut back to each prompt: the reducer's input, in the reference's layout."""
    p = len(prompts)
    clean = [batch["clean"][j, : len(x)] for j, x in enumerate(prompts)]
    scaled = [[batch["scaled"][f * p + j, : len(x)] for j, x in enumerate(prompts)] for f in range(len(FACTORS))]
    return clean, scaled


def logit_noise(a, b) -> float:
    """Largest |difference| between two sets of logits of the same prompts, clean and scaled."""
    pairs = list(zip(a[0], b[0], strict=True)) + [pair for fa, fb in zip(a[1], b[1], strict=True) for pair in zip(fa, fb, strict=True)]
    return max(float((x - y).abs().max()) for x, y in pairs)


def reference(prompts, clean_logits, scaled_logits, include_first: bool) -> dict[str, np.ndarray]:
    """Per (factor, prompt) sums and counts by a loop over positions, from full-vocabulary log-softmax."""
    shape = (len(scaled_logits), len(prompts))
    out = {k: np.zeros(shape) for k in ("kl", "top1", "nll")} | {"n": np.zeros(len(prompts)), "n_next": np.zeros(len(prompts))}
    first = 0 if include_first else 1
    gaps = []
    for j, x in enumerate(prompts):
        clean = clean_logits[j]  # (T, V)
        logp = torch.log_softmax(clean.double(), dim=-1)
        for i, per_prompt in enumerate(scaled_logits):
            scaled = per_prompt[j]
            logq = torch.log_softmax(scaled.double(), dim=-1)
            for t in range(first, len(x)):
                out["kl"][i, j] += F.kl_div(logq[t], logp[t], log_target=True, reduction="sum").item()
                out["top1"][i, j] += float(clean[t].argmax() == scaled[t].argmax())
                gaps += [float(v[0] - v[1]) for v in (clean[t].topk(2).values, scaled[t].topk(2).values)]
                if t + 1 < len(x):
                    target = x[t + 1 : t + 2]
                    nll_q = F.cross_entropy(logq[t : t + 1], target, reduction="sum")
                    nll_p = F.cross_entropy(logp[t : t + 1], target, reduction="sum")
                    out["nll"][i, j] += (nll_q - nll_p).item()
        out["n"][j] = max(len(x) - first, 0)
        out["n_next"][j] = max(len(x) - 1 - first, 0)
    out["min_top2_gap"] = min(gaps)
    return out


def reduce(batch, include_first: bool, vocab_chunk: int | None = None, dtype=torch.float64):
    clean = clean_predictions(batch["clean"], batch["ids"], batch["mask"], include_first, vocab_chunk=vocab_chunk, dtype=dtype)
    return reduce_scaled(clean, batch["scaled"])


# ---------------------------------------------------------------------------------------------
# which positions count


def test_position_weights_right_and_left_padding() -> None:
    right = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]])
    left = right.flip(1)
    for mask in (right, left):
        assert position_weights(mask, include_first=False).sum(1).tolist() == [3, 1, 0]  # T−1
        assert position_weights(mask, include_first=True).sum(1).tolist() == [4, 2, 1]  # T
        assert next_token_weights(mask, include_first=False).sum(1).tolist() == [2, 0, 0]  # T−2
        assert next_token_weights(mask, include_first=True).sum(1).tolist() == [3, 1, 0]  # T−1
    assert next_token_weights(right, include_first=False)[0].tolist() == [0, 1, 1, 0, 0]  # positions 1..T−2
    assert next_token_weights(left, include_first=True)[0].tolist() == [0, 1, 1, 1, 0]  # 0..T−2 after 1 pad


# ---------------------------------------------------------------------------------------------
# against the reference


@pytest.mark.parametrize("include_first", [False, True])
def test_matches_one_prompt_at_a_time_reference(model, prompts, batch, include_first: bool) -> None:
    """End to end: reducer on one padded batch vs the reference on batch-of-one forwards."""
    alone = one_at_a_time(model, prompts, FACTORS)
    ref = reference(prompts, *alone, include_first)
    sums = reduce(batch, include_first)
    got = Predictions.from_sums(sums, FACTORS, include_first)
    assert sums.positions.tolist() == ref["n"].tolist()
    assert sums.next_positions.tolist() == ref["n_next"].tolist()
    # The two sides run different batch shapes, so their float32 logits differ in the last bits.
    # log p(next) = logit − logsumexp moves by at most 2·noise per side: the NLL change by 4·noise.
    noise = logit_noise(alone, from_padded_batch(batch, prompts))
    assert 0 < noise < 1e-5
    # kl over the corpus: 1e-6 relative (issue 10); KL moves only to second order in the noise
    np.testing.assert_allclose(got.kl, ref["kl"].sum(1) / ref["n"].sum(), rtol=1e-6, atol=0)
    np.testing.assert_allclose(got.nll_change, ref["nll"].sum(1) / ref["n_next"].sum(), rtol=0, atol=4 * noise)
    # top1: no top-2 logit gap is within reach of last-bit noise, so the argmaxes must agree exactly
    assert ref["min_top2_gap"] > 1e-5
    assert sums.top1.tolist() == ref["top1"].tolist()
    np.testing.assert_array_equal(got.top1_agreement, ref["top1"].sum(1) / ref["n"].sum())
    # Per prompt, 2e-5: a one-position prompt's KL of ~1e-5 nats shows the logit noise as ~4e-6 relative
    np.testing.assert_allclose(sums.kl, ref["kl"], rtol=2e-5, atol=0)
    assert (np.abs(sums.nll - ref["nll"]) <= 4 * noise * ref["n_next"]).all()
    assert got.kl.min() > 1e-6  # a real perturbation (factor 1.1: ~1e-5 nats), far above rounding: the comparison means something


@pytest.mark.parametrize("include_first", [False, True])
def test_arithmetic_matches_reference_on_the_same_logits(prompts, batch, include_first: bool) -> None:
    """The reducer alone: fed the very logits the reference gets, only float64 rounding separates them."""
    ref = reference(prompts, *from_padded_batch(batch, prompts), include_first)
    sums = reduce(batch, include_first, vocab_chunk=333)
    np.testing.assert_allclose(sums.kl, ref["kl"], rtol=1e-9, atol=0)
    np.testing.assert_allclose(sums.nll, ref["nll"], rtol=1e-9, atol=1e-15)
    assert sums.top1.tolist() == ref["top1"].tolist()


def test_factor_one_is_exactly_zero_one_zero(batch) -> None:
    clean = batch["clean"]
    for logits in (clean, clean.to(torch.bfloat16)):
        scaled = torch.cat([logits.clone(), batch["scaled"].to(logits.dtype)[: clean.shape[0]], logits.clone()])  # (3·P, T, V)
        for dtype in (torch.float64, torch.float32):
            for chunk in (None, 333, 64):
                c = clean_predictions(logits, batch["ids"], batch["mask"], False, vocab_chunk=chunk, dtype=dtype)
                got = Predictions.from_sums(reduce_scaled(c, scaled), (1.0, FACTORS[0], 1.0), False)
                for f in (0, 2):
                    assert got.kl[f] == 0.0 and got.top1_agreement[f] == 1.0 and got.nll_change[f] == 0.0
                    counted = got.positions > 0
                    assert (got.kl_per_prompt[f][counted] == 0.0).all()
                    assert (got.top1_per_prompt[f][counted] == 1.0).all()
                    assert (got.nll_per_prompt[f][got.next_positions > 0] == 0.0).all()
                assert got.kl[1] > 1e-4  # the scaled factor in between is not zero


def test_kl_is_nonnegative(model, batch) -> None:
    near = (0.99, 0.999, 1.001, 1.01)
    with torch.no_grad(), scaled_block(model, torch.tensor(near).repeat_interleave(batch["ids"].shape[0])):
        scaled = model(input_ids=batch["ids"].repeat(len(near), 1), attention_mask=batch["mask"].repeat(len(near), 1)).logits
    for logits in (batch["scaled"], scaled):
        sums = reduce_scaled(clean_predictions(batch["clean"], batch["ids"], batch["mask"], True), logits)
        assert (sums.kl >= 0).all(), sums.kl
    assert sums.kl.sum() > 0  # factors 1 ± 0.001 do move the predictions, by a positive amount


# ---------------------------------------------------------------------------------------------
# batching, chunking, vocabulary splitting


def test_batched_equals_one_prompt_at_a_time(model, prompts, batch) -> None:
    whole = reduce(batch, include_first=False)
    alone = one_at_a_time(model, prompts, FACTORS)
    noise = logit_noise(alone, from_padded_batch(batch, prompts))  # batch-shape noise of the float32 logits
    for j, x in enumerate(prompts):
        scaled = torch.stack([per_prompt[j] for per_prompt in alone[1]])  # (F, 1·T, V): factor-major, P = 1
        one = reduce_scaled(clean_predictions(alone[0][j][None], x[None], torch.ones_like(x[None]), False), scaled)
        # per prompt 2e-5 for KL and 4·noise a position for the NLL change, as in the reference test
        np.testing.assert_allclose(one.kl[:, 0], whole.kl[:, j], rtol=2e-5, atol=0)
        assert one.top1[:, 0].tolist() == whole.top1[:, j].tolist()
        assert (np.abs(one.nll[:, 0] - whole.nll[:, j]) <= 4 * noise * one.next_positions[0]).all()


def test_prompt_and_factor_chunks_join_to_the_whole(batch) -> None:
    p, n_f = batch["ids"].shape[0], len(FACTORS)
    whole = reduce(batch, include_first=False)
    scaled = batch["scaled"].view(n_f, p, *batch["scaled"].shape[1:])  # (F, P, T, V)
    columns = []
    for rows in (slice(0, 2), slice(2, p)):  # two prompt chunks, each trimmed to its own longest prompt
        t = int(batch["mask"][rows].sum(1).max())
        clean = clean_predictions(batch["clean"][rows, :t], batch["ids"][rows, :t], batch["mask"][rows, :t], False)
        columns.append(join([reduce_scaled(clean, scaled[fs, rows, :t]) for fs in (slice(0, 1), slice(1, n_f))], "factors"))
    joined = join(columns, "prompts")
    # same logits, float64 sums whose order depends on the chunk shape: rounding only (~1e-16 nats a position)
    for name in ("kl", "nll"):
        np.testing.assert_allclose(getattr(joined, name), getattr(whole, name), rtol=1e-9, atol=1e-14)
    for name in ("top1", "positions", "next_positions"):
        assert getattr(joined, name).tolist() == getattr(whole, name).tolist()


@pytest.mark.parametrize("include_first", [False, True])
def test_vocabulary_splitting_changes_nothing(batch, include_first: bool) -> None:
    whole = reduce(batch, include_first)
    for chunk in (VOCAB, VOCAB - 1, 333, 64, 1):
        part = reduce(batch, include_first, vocab_chunk=chunk)
        # another summation order of the float64 logsumexp: ~1e-16 nats a position, ~1e-11 of a 1e-5 KL
        np.testing.assert_allclose(part.kl, whole.kl, rtol=1e-9, atol=0)
        np.testing.assert_allclose(part.nll, whole.nll, rtol=1e-9, atol=1e-14)
        assert part.top1.tolist() == whole.top1.tolist()


def test_argmax_ties_go_to_the_lowest_id_across_slices() -> None:
    logits = torch.zeros(1, 4, 10)
    logits[0, 0, [3, 7]] = 5.0  # tie across the slice boundary at 5
    logits[0, 1, [5, 6, 9]] = 2.0  # tie inside the second slice
    logits[0, 3, :] = -1.0  # all equal: id 0
    mask, ids = torch.ones(1, 4, dtype=torch.int64), torch.zeros(1, 4, dtype=torch.int64)
    for chunk in (None, 5, 3, 1):
        top1 = clean_predictions(logits, ids, mask, True, vocab_chunk=chunk).top1
        assert top1.tolist() == [[3, 5, 0, 0]]


def test_reducer_leaves_the_logits_untouched(batch) -> None:
    before = batch["clean"].clone(), batch["scaled"].clone()
    for dtype in (torch.float32, torch.float64):
        reduce(batch, False, vocab_chunk=None, dtype=dtype)
        reduce(batch, False, vocab_chunk=100, dtype=dtype)
    assert torch.equal(before[0], batch["clean"]) and torch.equal(before[1], batch["scaled"])


def test_float32_arithmetic_is_close_but_coarser(batch) -> None:
    exact, coarse = reduce(batch, False), reduce(batch, False, dtype=torch.float32)
    # float32 log-normalizers of ~log(1000) carry ~1e-6 nats absolute error: hence float64 by default
    np.testing.assert_allclose(coarse.kl, exact.kl, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(coarse.nll, exact.nll, rtol=1e-3, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# memory


class LiveBytes(TorchDispatchMode):
    """Peak bytes of the storages that tensor ops create while entered (inputs' storages excluded)."""

    def __init__(self, *inputs: torch.Tensor) -> None:
        super().__init__()
        self.external = {t.untyped_storage().data_ptr() for t in inputs}
        self.live: dict[int, list[int]] = {}  # data_ptr -> [bytes, tensors referring to it]
        self.now = self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in self.external:
                self._track(t)
        return out

    def _track(self, t: torch.Tensor) -> None:
        key = t.untyped_storage().data_ptr()
        if key in self.live:
            self.live[key][1] += 1
        else:
            self.live[key] = [t.untyped_storage().nbytes(), 1]
            self.now += self.live[key][0]
            self.peak = max(self.peak, self.now)
        weakref.finalize(t, self._release, key)

    def _release(self, key: int) -> None:
        entry = self.live[key]
        entry[1] -= 1
        if entry[1] == 0:
            self.now -= entry[0]
            del self.live[key]


def peak_bytes(batch, n_factors: int, vocab_chunk: int | None) -> int:
    p = batch["ids"].shape[0]
    scaled = batch["scaled"][:p].repeat(n_factors, 1, 1)  # (F·P, T, V)
    clean = clean_predictions(batch["clean"], batch["ids"], batch["mask"], False, vocab_chunk=vocab_chunk)
    with LiveBytes(batch["clean"], scaled) as live:
        reduce_scaled(clean, scaled)
    return live.peak


def test_peak_memory_does_not_grow_with_factors(batch) -> None:
    p, t = batch["ids"].shape
    small, large = peak_bytes(batch, 2, 100), peak_bytes(batch, 16, 100)
    assert large - small <= 3 * 14 * p * 8  # only the (F, P) float64 sums grow
    slice_bytes = p * t * 100 * 8  # one (P, T, 100) float64 tensor
    assert 2 * slice_bytes < small <= WORKING_COPIES * slice_bytes
    assert peak_bytes(batch, 2, None) > 8 * small  # the measure sees the slices: the whole vocabulary is 10×


def test_budgeted_chunk_keeps_the_reducer_within_the_budget(batch) -> None:
    p, t = batch["ids"].shape
    budget = 400_000
    chunk = vocab_chunk_for(budget, p * t, VOCAB)
    assert chunk is not None and chunk < VOCAB
    clean = clean_predictions(batch["clean"], batch["ids"], batch["mask"], False, vocab_chunk=chunk)
    with LiveBytes(batch["clean"], batch["scaled"]) as live:
        reduce_scaled(clean, batch["scaled"])
    assert budget / 2 < live.peak <= budget
    assert vocab_chunk_for(10**9, p * t, VOCAB) is None


# ---------------------------------------------------------------------------------------------
# records and errors


def test_to_dict_is_json_with_none_for_prompts_without_positions(batch) -> None:
    got = Predictions.from_sums(reduce(batch, False), FACTORS, False)
    data = json.loads(json.dumps(got.to_dict(per_prompt=True), allow_nan=False))
    assert data["factors"] == list(FACTORS) and len(data["kl"]) == len(FACTORS)
    one_token = LENGTHS.index(1)
    assert data["kl_per_prompt"][0][one_token] is None
    assert data["nll_change_per_prompt"][0][LENGTHS.index(2)] is None
    assert data["positions"] == sum(n - 1 for n in LENGTHS)
    assert data["next_token_positions"] == sum(max(n - 2, 0) for n in LENGTHS)


def test_bad_input_names_the_value(batch) -> None:
    with pytest.raises(InputError, match=r"vocab_chunk=0 .*positive int"):
        clean_predictions(batch["clean"], batch["ids"], batch["mask"], False, vocab_chunk=0)
    clean = clean_predictions(batch["clean"], batch["ids"], batch["mask"], False)
    with pytest.raises(InputError, match=r"shape \(5, 12, 1000\) do not match"):
        reduce_scaled(clean, batch["scaled"][:5])
    with pytest.raises(InputError, match=r"memory budget of .* MB cannot hold .*memory_budget_mb"):
        vocab_chunk_for(100, 72, VOCAB)
    with pytest.raises(InputError, match="3 factors given for sums of 4 factors"):
        Predictions.from_sums(reduce_scaled(clean, batch["scaled"]), FACTORS[:3], False)
