"""profile(..., reuse_prefix=True) against the default full forward, and the padding-aware chunks.

With reuse_prefix the blocks before the intervention layer are not rerun per factor, so sites
before the layer read 0 by construction; from the layer on, Δ must equal the full forward's.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness import CleanPass, load_subject, profile
from harness.measure.clean import prompt_chunks
from harness.model.prompts import tokenize

PROMPTS = [
    "The cat sat on the mat.",
    "Paris is the capital of France, and Berlin is the capital of Germany.",
    "One two three.",
    "A somewhat longer prompt, so that the batch needs padding on the shorter rows here.",
    "Hi there",
    "Rivers flow to the sea; the sea gives rain back to the hills.",
]
FACTORS = [0.0, 0.5, 1.5, 3.0]


@pytest.fixture(scope="module", params=["random-gpt2", "minilm"])
def subject(request: pytest.FixtureRequest):
    return load_subject(request.param, device="cpu")


@pytest.mark.parametrize("factor_batch", [1, None], ids=["one-per-forward", "stacked"])
@pytest.mark.parametrize("layer", [0, 2, -1])
def test_reuse_prefix_matches_full_forward_from_the_layer_on(subject, layer: int, factor_batch: int | None) -> None:
    """One factor per forward: the replay runs each block at the clean pass's shapes on the same inputs
    as the full forward, so the two agree bit for bit. Stacked, both round by batch shape (see
    harness.measure.replay: up to 5.7e-7 relative measured), hence a tolerance."""
    layer = layer % subject.n_blocks
    clean = CleanPass(subject, PROMPTS)
    full = profile(subject, None, layer, FACTORS, per_prompt=True, clean=clean, factor_batch=factor_batch)
    fast = profile(subject, None, layer, FACTORS, per_prompt=True, clean=clean, factor_batch=factor_batch, reuse_prefix=True)
    first = subject.site_index(f"block.{layer}")
    for key in ("delta", "delta_all_tokens", "prompt_delta", "prompt_delta_all_tokens"):
        a, b = getattr(full, key)[:, first:], getattr(fast, key)[:, first:]
        if factor_batch == 1:
            np.testing.assert_array_equal(b, a, err_msg=key)
        else:
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6 * float(np.abs(a).max()), err_msg=key)
        assert np.all(getattr(fast, key)[:, :first] == 0.0), f"{key}: sites before the layer are 0 by construction"
    # factor 1.5 moves every site from the layer on: the comparison above is not of zeros
    assert np.all(full.delta[2, first:] > 0)
    np.testing.assert_array_equal(fast.clean_norm, full.clean_norm)
    assert fast.reuse_prefix and not full.reuse_prefix and fast.factor_batch == factor_batch


def test_block_layer_delta_is_the_scaled_clean_norm(subject) -> None:
    """At block L itself Δ = |1 − f|·‖H_L‖: an independent check of the replay's starting point."""
    layer = 2
    fast = profile(subject, PROMPTS, layer, FACTORS, reuse_prefix=True)
    s = subject.site_index(f"block.{layer}")
    expected = np.abs(1.0 - np.asarray(FACTORS)) * fast.clean_norm[s]
    np.testing.assert_allclose(fast.delta[:, s], expected, rtol=1e-5)


def test_chunks_keep_padding_small_and_results_unchanged() -> None:
    subject = load_subject("random-gpt2", device="cpu")
    rng = np.random.default_rng(0)
    prompts = ["x" + "y" * int(n) for n in rng.integers(4, 60, size=40)]
    tokens = tokenize(subject, prompts)
    chunks = prompt_chunks(subject, tokens, 512 * 2**20)
    assert sorted(i for c in chunks for i in c) == list(range(len(prompts)))
    padded = sum(len(c) * max(tokens.lengths[i] for i in c) for c in chunks)
    one_batch = len(prompts) * max(tokens.lengths)
    assert padded < 0.75 * one_batch, (padded, one_batch)
    # per-prompt Δ does not depend on which prompts share a chunk: compare with one prompt at a time
    prof = profile(subject, prompts[:10], 2, [0.5], per_prompt=True)
    for p in (0, 5, 9):
        alone = profile(subject, [prompts[p]], 2, [0.5], per_prompt=True)
        np.testing.assert_allclose(prof.prompt_delta[:, :, p], alone.prompt_delta[:, :, 0], rtol=1e-4, atol=1e-4)
