"""C0 on a model whose hidden states have trained-model norms (issue 19, row 1).

Trained transformers carry hidden states with norms in the hundreds (GPT-2's last block ≈ 456), where
LayerNorm and RMSNorm are scale-invariant: scaling the last block leaves the final norm's output
unchanged up to ε. A random tiny model has small states, where ε dominates and the final norm does
move, which hid the break: the old rule ("every later site moves") refuted C0 on realistic norms.
The model here is the tiny random Llama of scripts/tiny_checkpoint.py with its token embeddings and every
write into the residual stream (attention o_proj, MLP down_proj) × 200. The norms make every block's input
scale-free, so the whole residual stream is then 200 × the original's, up to ε: the same model with norms
in the hundreds instead of ~1 (a pre-LN model's relative Δ does not depend on that scale, except through ε).
Scaling only the embeddings would not do: the blocks' writes would become negligible against the stream,
and then nothing downstream moves much, an artefact of the construction rather than of trained weights.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness import load_subject, profile
from harness.judge.verdict import HOLDS, REFUTED
from harness.note.c0_causality import invariant_sites, judge_c0
from harness.note.thresholds import INVARIANT_SHARE, ZERO_RELATIVE

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ["The cat sat on the mat.", "A quick brown fox jumps over the lazy dog again.", "Layers scale, and norms follow."]
EMBED_GAIN = 200.0


@pytest.fixture(scope="module")
def loud_llama(tmp_path_factory) -> Path:
    """A tiny random Llama whose embeddings are multiplied by EMBED_GAIN, saved as a checkpoint directory."""
    from safetensors.torch import load_file, save_file

    out = tmp_path_factory.mktemp("loud") / "llama"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "tiny_checkpoint.py"), "llama", str(out)], check=True, capture_output=True)
    weights = out / "model.safetensors"
    tensors = load_file(weights)
    key = next(k for k in tensors if k.endswith("embed_tokens.weight"))
    writes = [k for k in tensors if k == key or k.endswith(("o_proj.weight", "down_proj.weight"))]
    assert len(writes) == 1 + 2 * 6, writes  # the embeddings, and two writes per block
    for k in writes:
        tensors[k] = tensors[k] * EMBED_GAIN
    save_file({k: v.contiguous() for k, v in tensors.items()}, weights, metadata={"format": "pt"})
    return out


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_c0_holds_on_realistic_norms_and_the_final_norm_shows_its_invariance(loud_llama, dtype):
    subject = load_subject(str(loud_llama), dtype=dtype)
    n = subject.n_blocks
    by_block = {layer: profile(subject, PROMPTS, layer=layer, factors=[0.5], per_prompt=True) for layer in range(n)}
    last = by_block[n - 1]
    rel = last.relative_delta[0]
    at, final = last.site(f"block.{n - 1}"), last.site("final_norm")
    # the states are large: the final norm absorbs the scaling, so the old rule ("final_norm moved") fails here
    assert rel[at] == pytest.approx(0.5, rel=1e-2 if dtype == "bfloat16" else 1e-6)
    assert rel[final] <= ZERO_RELATIVE[dtype], f"final_norm moved by {rel[final]:.3g}: the norms are not realistic enough"
    assert invariant_sites(last) == {"final_norm": invariant_sites(last)["final_norm"]}
    assert all(invariant_sites(by_block[layer]) == {} for layer in range(n - 1))  # only the last block feeds the norm directly
    verdict = judge_c0(by_block, dtype=subject.dtype_name, seed=0)
    assert verdict.verdict == HOLDS, verdict.reason
    [entry] = verdict.evidence["invariant_sites"]
    assert entry["layer"] == n - 1 and entry["site"] == "final_norm" and "scale-invariant" in entry["reason"]
    assert entry["share_of_scaling"] == pytest.approx(rel[final] / rel[at])
    # the invariance is a sharp check of its own: ε/σ² is tiny in float32; bf16 rounds the two passes apart
    assert entry["share_of_scaling"] <= (1e-5 if dtype == "float32" else INVARIANT_SHARE)
    assert "final_norm" in verdict.margin_text and verdict.margin > 0


def test_a_final_norm_that_moves_with_the_scaling_refutes_c0(loud_llama):
    """A site that should be invariant but moves as much as the scaled block (a hook applied after the norm)."""
    subject = load_subject(str(loud_llama))
    n = subject.n_blocks
    by_block = {layer: profile(subject, PROMPTS[:1], layer=layer, factors=[0.5]) for layer in range(n)}
    last = by_block[n - 1]
    final, at = last.site("final_norm"), last.site(f"block.{n - 1}")
    leaked = last.delta.copy()
    leaked[0, final] = last.relative_delta[0, at] * last.clean_norm[final]  # the norm's output scaled too
    from dataclasses import replace

    by_block[n - 1] = replace(last, delta=leaked)
    verdict = judge_c0(by_block)
    assert verdict.verdict == REFUTED and verdict.margin < 0
    assert f"block {n - 1}: final_norm moved by 1 of the scaling" in verdict.reason
    assert np.isclose(verdict.evidence["invariant_sites"][0]["share_of_scaling"], 1.0)
