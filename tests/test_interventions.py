"""Every intervention kind against an oracle that does not use the harness's hooks.

  - scale-update s = 0 is the model with block L deleted (its weights copied into a config one block
    shorter): bit for bit, same kernels at the same shapes; s = 1 is the clean pass exactly;
  - noise: relative Δ at L is s; the same seed gives the same numbers, another seed others;
  - add: Δ at L is |s|·‖v‖·√(counted tokens), and the direction file's sha256 is recorded;
  - mean-ablate s = 1: every token at L is μ, the mean of HuggingFace's own hidden states;
  - --positions first / rest: the tokens not edited keep their states (see each test for why);
  - every kind: Δ before L is exactly 0, and reuse_prefix equals the full forward bit for bit.
The readouts of the reference side are HuggingFace's `output_hidden_states`, never `Capture`.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from harness import CleanPass, load_subject, profile
from harness.intervene.edits import MeanAblate, Noise, Scale, ScaleUpdate
from harness.intervene.kinds import KINDS, InterventionSpec
from harness.measure.clean import clean_mean

PROMPTS = [
    "The cat sat on the mat.",
    "Paris is the capital of France, and Berlin is the capital of Germany.",
    "One two three.",
    "Rivers flow to the sea; the sea gives rain back to the hills.",
]
LAYER = 2


@pytest.fixture(scope="module", params=["random-gpt2", "minilm"])
def subject(request: pytest.FixtureRequest):
    return load_subject(request.param, device="cpu")


@pytest.fixture(scope="module")
def clean(subject) -> CleanPass:
    return CleanPass(subject, PROMPTS, record_block_inputs=True)


def _hf_states(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """HuggingFace's own hidden states: entry i is block i's input; the last is the model's output."""
    with torch.inference_mode():
        out = model(**batch, output_hidden_states=True)
    return (*out.hidden_states[:-1], out.last_hidden_state)


def _batch(subject, text: str) -> dict[str, torch.Tensor]:
    return {k: torch.tensor([v]) for k, v in subject.encode(text).items()}


def without_block(subject, layer: int) -> torch.nn.Module:
    """The base model with block `layer` deleted: the same weights in a config one block shorter."""
    config = subject.model.config.__class__.from_dict(subject.model.config.to_dict())
    config.num_hidden_layers = subject.n_blocks - 1
    if getattr(config, "layer_types", None):
        config.layer_types = [t for i, t in enumerate(config.layer_types) if i != layer]
    config._attn_implementation = subject.model.config._attn_implementation
    short = type(subject.model)(config).eval()
    prefix = subject.spec.blocks + "."
    weights = {}
    for key, value in subject.model.state_dict().items():
        if key.startswith(prefix):
            index, rest = key[len(prefix) :].split(".", 1)
            if int(index) == layer:
                continue
            key = f"{prefix}{int(index) - (int(index) > layer)}.{rest}"
        weights[key] = value
    missing, unexpected = short.load_state_dict(weights, strict=False)
    assert not unexpected and all(k.startswith("pooler.") for k in missing), (missing, unexpected)  # the pooler is never a site
    return short


@pytest.mark.parametrize("layer", [0, LAYER])
def test_scale_update_zero_is_the_model_without_the_block(subject, layer):
    """Block L skipped: block L+1 gets block L's input, as block L of the shorter model does. Same
    kernels at the same shapes on the same values, so equal bit for bit."""
    short = without_block(subject, layer)
    assert len(short.get_submodule(subject.spec.blocks)) == subject.n_blocks - 1
    for text in PROMPTS[:2]:
        batch = _batch(subject, text)
        with ScaleUpdate(subject, layer, 0.0):
            edited = _hf_states(subject.model, batch)  # N+1 entries: inputs of blocks 0..N-1, then the output
        reference = _hf_states(short, batch)  # N entries
        for i, state in enumerate(edited):
            j = i if i <= layer else i - 1  # entry i > L of the long model is entry i-1 of the short one
            assert torch.equal(state, reference[j]), f"hidden state {i} of the edited model differs from {j} of the short one"
    # and the sweep's Δ against the clean pass is the short model's distance to the long one
    prof = profile(subject, PROMPTS[:2], layer, [0.0], intervention=InterventionSpec("scale-update"), per_prompt=True)
    for p, text in enumerate(PROMPTS[:2]):
        batch = _batch(subject, text)
        long, short_states = _hf_states(subject.model, batch), _hf_states(short, batch)
        expected = float(torch.linalg.norm(long[-1][0, 1:] - short_states[-1][0, 1:]))
        assert prof.prompt_delta[0, -1, p] == pytest.approx(expected, rel=1e-5)  # other batch shape: rounding


def test_scale_update_one_is_the_clean_pass_exactly(subject, clean):
    for reuse in (False, True):
        prof = profile(subject, None, LAYER, [1.0], clean=clean, intervention=InterventionSpec("scale-update"), reuse_prefix=reuse)
        assert np.all(prof.delta == 0.0) and np.all(prof.delta_all_tokens == 0.0)
    moved = profile(subject, None, LAYER, [0.5], clean=clean, intervention=InterventionSpec("scale-update"))
    assert np.all(moved.delta[0, subject.site_index(f"block.{LAYER}") :] > 0)


@pytest.mark.parametrize("strength", [0.1, 0.7])
def test_noise_relative_delta_at_the_layer_is_the_strength(subject, clean, strength):
    prof = profile(subject, None, LAYER, [strength], clean=clean, intervention=InterventionSpec("noise", seed=3))
    at = subject.site_index(f"block.{LAYER}")
    assert prof.relative_delta[0, at] == pytest.approx(strength, rel=1e-6)
    assert prof.relative_delta_all_tokens[0, at] == pytest.approx(strength, rel=1e-6)
    assert np.all(prof.delta[0, :at] == 0.0)


def test_noise_is_seeded_per_prompt(subject, clean):
    spec = InterventionSpec("noise", seed=0)
    a = profile(subject, None, LAYER, [0.5], clean=clean, intervention=spec, per_prompt=True)
    b = profile(subject, None, LAYER, [0.5], clean=clean, intervention=spec, per_prompt=True)
    other = profile(subject, None, LAYER, [0.5], clean=clean, intervention=InterventionSpec("noise", seed=1), per_prompt=True)
    np.testing.assert_array_equal(a.prompt_delta, b.prompt_delta)
    after = subject.site_index(f"block.{LAYER + 1}")
    assert np.all(a.prompt_delta[0, after:] != other.prompt_delta[0, after:])
    # the unit vectors: norm 1 per token, independent of the row a prompt runs in
    noise = Noise(subject, LAYER, 0.5, seed=0)
    u = noise.units(torch.tensor([7, 2, 7]), 5, 16)
    np.testing.assert_allclose(torch.linalg.vector_norm(u, dim=-1).numpy(), 1.0, rtol=1e-6)
    assert torch.equal(u[0], u[2]) and not torch.equal(u[0], u[1])


@pytest.mark.parametrize("suffix", [".npy", ".pt"])
def test_add_delta_is_strength_times_norm_times_root_of_tokens(subject, clean, tmp_path, suffix):
    width = subject.model.config.hidden_size
    rng = np.random.default_rng(0)
    v = rng.normal(size=width) * 0.3
    path = tmp_path / f"v{suffix}"
    if suffix == ".npy":
        np.save(path, v)
    else:
        torch.save(torch.tensor(v), path)
    spec = InterventionSpec("add", direction=path)
    prof = profile(subject, None, LAYER, [-1.5, 0.5], clean=clean, intervention=spec)
    at = subject.site_index(f"block.{LAYER}")
    lengths = np.asarray(prof.prompt_lengths)
    counted, everything = float((lengths - 1).sum()), float(lengths.sum())
    norm = float(np.linalg.norm(v.astype(np.float32)))
    np.testing.assert_allclose(prof.delta[:, at], [1.5 * norm * counted**0.5, 0.5 * norm * counted**0.5], rtol=1e-6)
    np.testing.assert_allclose(prof.delta_all_tokens[:, at], [1.5 * norm * everything**0.5, 0.5 * norm * everything**0.5], rtol=1e-6)
    assert np.all(prof.delta[:, :at] == 0.0)
    assert prof.direction_sha256 == hashlib.sha256(path.read_bytes()).hexdigest() and prof.intervention == "add"


def test_mean_ablate_one_gives_every_token_the_clean_mean(subject, clean):
    # μ from HuggingFace's own states, one prompt at a time, first token excluded (the counted tokens)
    rows = [_hf_states(subject.model, _batch(subject, text))[LAYER + 1][0, 1:].double() for text in PROMPTS]
    expected = torch.cat(rows).mean(dim=0)
    mean = clean_mean(clean, LAYER, "output")
    torch.testing.assert_close(mean.double(), expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))
    batch = _batch(subject, PROMPTS[1])
    with MeanAblate(subject, LAYER, 1.0, mean=mean):
        edited = _hf_states(subject.model, batch)
    assert torch.equal(edited[LAYER + 1][0], mean.expand_as(edited[LAYER + 1][0]))  # exactly μ, every token
    prof = profile(subject, None, LAYER, [1.0], clean=clean, intervention=InterventionSpec("mean-ablate"))
    at = subject.site_index(f"block.{LAYER}")
    distance = sum(float((row - expected).pow(2).sum()) for row in rows) ** 0.5
    assert prof.delta[0, at] == pytest.approx(distance, rel=1e-5)


def test_positions_first_leaves_the_other_tokens(subject):
    """Scale the first token only. At L the other tokens are untouched by construction. At L+1, on a
    pre-LN block, the others read the first token only through the block's first LayerNorm, which is
    scale-invariant but for its ε: LN(s·x) = (x − m)/sqrt(var + ε/s²), not /sqrt(var + ε). So with
    that norm's ε set to 0 they are unchanged up to rounding, and with it they move by ε's share
    only. On a post-LN block (minilm) attention reads the scaled state raw, so they do change."""
    batch = _batch(subject, PROMPTS[1])
    clean_states = _hf_states(subject.model, batch)
    with Scale(subject, LAYER, 0.5, positions="first"):
        edited = _hf_states(subject.model, batch)
    at = edited[LAYER + 1][0]  # block L's output
    assert torch.equal(at[1:], clean_states[LAYER + 1][0, 1:])
    torch.testing.assert_close(at[0], clean_states[LAYER + 1][0, 0] * 0.5)

    def moved(states: tuple[torch.Tensor, ...], clean: tuple[torch.Tensor, ...]) -> float:
        after, reference = states[LAYER + 2][0, 1:], clean[LAYER + 2][0, 1:]  # block L+1's output, tokens 1..
        return float(torch.linalg.norm(after - reference) / torch.linalg.norm(reference))

    if not subject.spec.flag(subject.model.config, "pre_norm"):
        assert moved(edited, clean_states) > 1e-3
        return
    norm = subject.blocks[LAYER + 1].ln_1  # GPT-2's norm before attention
    x0 = clean_states[LAYER + 1][0, 0].double()
    share = abs(float(((x0.var(unbiased=False) + norm.eps) / (x0.var(unbiased=False) + norm.eps / 0.25)) ** 0.5) - 1)
    assert 0 < moved(edited, clean_states) <= share  # the first token's LN output moves by `share`; the others see a part of it
    eps, norm.eps = norm.eps, 0.0
    try:
        without = _hf_states(subject.model, batch)
        with Scale(subject, LAYER, 0.5, positions="first"):
            edited_without = _hf_states(subject.model, batch)
    finally:
        norm.eps = eps
    assert moved(edited_without, without) <= 1e-6


def test_positions_rest_never_touches_the_first_token_of_a_causal_model(subject):
    """A causal model's first token attends only to itself, so with `rest` its state is the clean one at every site."""
    if subject.spec.kind != "decoder":
        pytest.skip("an encoder's first token attends to every token")
    batch = _batch(subject, PROMPTS[0])
    clean_states = _hf_states(subject.model, batch)
    with Scale(subject, LAYER, 1.5, positions="rest"):
        edited = _hf_states(subject.model, batch)
    for i, (a, b) in enumerate(zip(edited, clean_states, strict=True)):
        assert torch.equal(a[0, 0], b[0, 0]), f"state {i}"
    assert not torch.equal(edited[-1][0, 1:], clean_states[-1][0, 1:])


def test_positions_first_uncounted_is_zero_at_the_layer(subject, clean):
    prof = profile(subject, None, LAYER, [0.5], clean=clean, intervention=InterventionSpec(positions="first"))
    at = subject.site_index(f"block.{LAYER}")
    assert prof.delta[0, at] == 0.0 and prof.delta_all_tokens[0, at] > 0
    assert prof.positions == "first"


CASES = [
    ("scale", 0.5, "output", "all"),
    ("scale-update", 0.5, "output", "rest"),
    ("noise", 0.4, "mlp", "all"),
    ("mean-ablate", 0.7, "attention", "rest"),
    ("mean-ablate", 1.0, "output", "first"),
    ("add", 1.0, "mlp", "rest"),
]


@pytest.mark.parametrize(("kind", "strength", "component", "positions"), CASES)
def test_every_kind_is_exact_before_the_layer_and_replays(subject, clean, tmp_path, kind, strength, component, positions):
    """Δ before L is exactly 0 (the same forward at the same shapes), and reuse_prefix equals the full forward bit for bit."""
    direction = None
    if kind == "add":
        direction = tmp_path / "v.npy"
        np.save(direction, np.random.default_rng(1).normal(size=subject.model.config.hidden_size))
    spec = InterventionSpec(kind, positions, component, direction)
    full = profile(subject, None, LAYER, [strength, KINDS[kind].drawn[0]], clean=clean, intervention=spec, per_prompt=True)
    strengths = [strength, KINDS[kind].drawn[0]]
    fast = profile(subject, None, LAYER, strengths, clean=clean, intervention=spec, per_prompt=True, reuse_prefix=True)
    at = subject.site_index(f"block.{LAYER}")
    assert np.all(full.delta_all_tokens[:, :at] == 0.0)
    np.testing.assert_array_equal(fast.prompt_delta_all_tokens[:, at:], full.prompt_delta_all_tokens[:, at:])
    assert np.all(full.delta_all_tokens[0, at + 1 :] > 0)  # the comparison is not of zeros
    assert (full.intervention, full.component, full.positions) == (kind, component, positions)


def test_only_a_pure_scaling_of_the_output_is_invisible_to_the_final_norm(subject, clean):
    """C0's exclusion (invariant_sites): with the last block edited, the final norm hides s·h, any positions, and nothing else."""
    import dataclasses

    from harness.note.c0_causality import invariant_sites

    last = subject.n_blocks - 1
    prof = profile(subject, None, last, [0.5], clean=clean)
    if "final_norm" not in prof.sites:
        assert invariant_sites(prof) == {}
        return
    assert set(invariant_sites(prof)) == set(invariant_sites(dataclasses.replace(prof, positions="first"))) == {"final_norm"}
    for change in ({"intervention": "noise"}, {"intervention": "scale-update"}, {"component": "mlp"}):
        assert invariant_sites(dataclasses.replace(prof, **change)) == {}
    noisy = profile(subject, None, last, [0.5], clean=clean, intervention=InterventionSpec("noise"))
    assert noisy.relative_delta[0, -1] > 1e-2 > prof.relative_delta[0, -1]  # measured: noise moves the norm's output, scaling does not
