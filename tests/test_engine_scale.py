"""Scale: memory_budget_mb bounds what a CleanPass holds; recomputed chunks give identical numbers; progress.

What is measured: torch CPU allocations are invisible to tracemalloc, so the memory test counts the
bytes of torch tensors alive in the process after the clean pass (a gc scan, the model's own
parameters and buffers left out, nothing collected first: a reference cycle that keeps states
alive counts). RSS is not asserted: glibc keeps freed heap pages, so RSS grows by allocator slack
(measured here: 183 MB after the 720-prompt pass below, 62 MB after malloc_trim, 27 MB of live tensors).
"""

from __future__ import annotations

import gc
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from harness import CleanPass, load_subject, profile, read_prompts

CORPUS = Path(__file__).resolve().parents[1] / "harness" / "note" / "prompts.txt"


@pytest.fixture(scope="module")
def gpt2():
    return load_subject("random-gpt2", device="cpu")


def _ten_times_the_corpus() -> list[str]:
    """10× harness/note/prompts.txt, each line cut to its first 3 to 6 words and numbered, so it stays fast."""
    base = read_prompts(CORPUS)
    return [" ".join(line.split()[: 3 + k % 4]) + f" ({k})" for k in range(10) for line in base]


def _live_tensor_bytes(subject) -> int:
    own = {id(t) for t in subject.model.parameters()} | {id(t) for t in subject.model.buffers()}
    storages = {}
    with warnings.catch_warnings():  # isinstance() on every object touches deprecated torch aliases
        warnings.simplefilter("ignore", FutureWarning)
        for obj in gc.get_objects():
            if isinstance(obj, torch.Tensor) and id(obj) not in own:
                storage = obj.untyped_storage()
                storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def test_ten_times_the_corpus_stays_under_a_small_budget(gpt2):
    corpus = _ten_times_the_corpus()
    budget_mb = 64
    gc.collect()  # only the garbage of earlier tests; none is collected between the pass and the count
    before = _live_tensor_bytes(gpt2)
    clean = CleanPass(gpt2, corpus, budget_mb)
    held = _live_tensor_bytes(gpt2) - before
    tokens = sum(clean.tokens.lengths)
    unbounded = tokens * len(gpt2.sites) * 768 * 4  # every chunk's clean states, as before the budget bound them
    assert len(corpus) >= 700 and unbounded > 2.5 * budget_mb * 2**20, "the corpus must not fit the budget"
    assert clean.held_bytes <= clean.hold_limit == budget_mb * 2**20 // 2
    assert 0 < clean.held_chunks < len(clean.chunks)
    assert held <= budget_mb * 2**20, f"{held / 2**20:.1f} MiB of tensors alive after the clean pass"
    # per-prompt results are kept for every prompt, and finite
    assert clean.clean.shape == (len(gpt2.sites), len(corpus)) and bool(torch.isfinite(clean.clean).all())


def test_recomputed_chunks_give_bit_identical_profiles(gpt2):
    prompts = _ten_times_the_corpus()[::18]  # 40 prompts
    clean = CleanPass(gpt2, prompts, 16)  # holds 8 MiB: some chunks, not all
    assert 0 < clean.held_chunks < len(clean.chunks)
    held = profile(gpt2, None, 2, [0.5, 1.0], clean=clean, per_prompt=True)
    for number in range(len(clean.chunks)):  # a recomputed chunk equals the first run's, bit for bit
        states, _ = clean.states(number)
        for site, norm in zip(gpt2.sites, clean.clean[:, clean.chunks[number].index], strict=True):
            chunk = clean.chunks[number]
            again = (states[site].float().square().sum(-1) * chunk.selected).sum(-1)
            assert torch.equal(again, norm), site
    clean.release()
    assert clean.held_chunks == 0
    recomputed = profile(gpt2, None, 2, [0.5, 1.0], clean=clean, per_prompt=True)
    np.testing.assert_array_equal(recomputed.prompt_delta, held.prompt_delta)
    assert np.all(recomputed.delta[1] == 0.0)  # factor 1 against recomputed states: exact


def test_replay_records_block_inputs_only_when_asked(gpt2):
    prompts = ["The cat sat on the mat.", "Paris is the capital of France.", "Hi there you"]
    plain = CleanPass(gpt2, prompts)
    recording = CleanPass(gpt2, prompts, record_block_inputs=True)
    assert plain.held_bytes < recording.held_bytes  # the masks and positions are kept only when a replay will use them
    lazy = profile(gpt2, None, 3, [0.5, 1.5], clean=plain, reuse_prefix=True, per_prompt=True)
    eager = profile(gpt2, None, 3, [0.5, 1.5], clean=recording, reuse_prefix=True, per_prompt=True)
    np.testing.assert_array_equal(lazy.prompt_delta, eager.prompt_delta)
    # recorded inputs never turn a full forward into a replay: block 0 still runs once per factor
    calls = []
    block = gpt2.blocks[0]
    forward = block.forward  # counted by wrapping it: profile refuses a subject that carries a foreign hook

    def counted(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    block.forward = counted
    try:
        profile(gpt2, None, 3, [0.5, 1.5], clean=recording)
        assert len(calls) == 2
        profile(gpt2, None, 3, [0.5, 1.5], clean=recording, reuse_prefix=True)
        assert len(calls) == 2
    finally:
        del block.forward


def test_progress_hook_counts_chunks(gpt2, capsys):
    from harness.measure.clean import terminal_progress

    prompts = _ten_times_the_corpus()[::18]
    seen: list[tuple[int, int]] = []
    profile(gpt2, prompts, 2, [0.5], memory_budget_mb=16, progress=lambda done, total: seen.append((done, total)))
    n = len(seen) // 2
    assert n > 1 and seen == [(i, 2 * n) for i in range(1, 2 * n + 1)]  # clean pass, then the factors
    assert terminal_progress("sweep") is None  # stderr is not a terminal under pytest: quiet
    bar = terminal_progress("sweep", force=True)
    profile(gpt2, prompts[:3], 2, [0.5], progress=bar)
    assert "sweep" in capsys.readouterr().err
