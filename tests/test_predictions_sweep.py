"""The effect on predictions inside the batched sweep: profile(..., predictions=True) against independent computations.

The reference runs each prompt alone (batch of one) through HuggingFace's own GPT2LMHeadModel built
from random-gpt2's weights, scales block LAYER's output with its own forward hook, and takes
torch.log_softmax over the whole vocabulary in float64. Where the sweep's batch shape equals the
reference's (one prompt per profile) the logits are the same computation, so the measures agree to
float64 rounding, far inside the issue's 1e-6 relative. Where it does not (padded batches, other
chunks) float32 kernels may round differently (MKL's AVX-512 kernels are not batch-invariant), so
those comparisons carry a tolerance scaled to float32 logit noise, not bit-equality.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_predictions import LiveBytes

from harness import CleanPass, load_subject, profile
from harness.errors import InputError

LAYER = 2
PROMPTS = ["The cat sat on the mat.", "Paris is a city in France, on the Seine.", "Rain fell all night."]
FACTORS = (0.5, 0.9, 1.0, 1.5)


@pytest.fixture(scope="module")
def subject():
    return load_subject("random-gpt2", device="cpu")


@pytest.fixture(scope="module")
def hf_model(subject):
    """HuggingFace's causal LM on the same weights: the head is its own lm_head, tied as GPT-2's."""
    from transformers import GPT2LMHeadModel

    model = GPT2LMHeadModel(subject.model.config)
    model.transformer.load_state_dict(subject.model.state_dict())
    model.tie_weights()
    return model.eval()


def reference(subject, hf_model, text: str, factor: float, include_first: bool) -> dict[str, float]:
    """Sums over one prompt's counted positions, batch of one, one hook, full-vocabulary float64 log-softmax."""
    ids = torch.tensor([subject.encode(text)["input_ids"]])

    def scale(module, args, output):
        output[0].mul_(factor) if isinstance(output, tuple) else output.mul_(factor)

    with torch.no_grad():
        clean = hf_model(input_ids=ids).logits[0]
        handle = hf_model.transformer.h[LAYER].register_forward_hook(scale)
        try:
            scaled = hf_model(input_ids=ids).logits[0]
        finally:
            handle.remove()
    logp, logq = torch.log_softmax(clean.double(), -1), torch.log_softmax(scaled.double(), -1)
    first = 0 if include_first else 1
    out = {"kl": 0.0, "top1": 0.0, "nll": 0.0, "n": 0, "n_next": 0}
    for t in range(first, ids.shape[1]):
        out["kl"] += F.kl_div(logq[t], logp[t], log_target=True, reduction="sum").item()
        out["top1"] += float(clean[t].argmax() == scaled[t].argmax())
        out["n"] += 1
        if t + 1 < ids.shape[1]:
            target = ids[0, t + 1]
            out["nll"] += (logp[t, target] - logq[t, target]).item()
            out["n_next"] += 1
    return out


def run(subject, prompts, factors, **kw):
    return profile(subject, prompts, LAYER, list(factors), per_prompt=True, predictions=True, **kw)


@pytest.mark.parametrize("include_first", [False, True])
def test_matches_huggingface_one_prompt_at_a_time(subject, hf_model, include_first):
    for text in PROMPTS:
        prof = run(subject, [text], FACTORS, include_first_token=include_first)
        assert prof.predictions_include_first is include_first
        for f, factor in enumerate(FACTORS):
            ref = reference(subject, hf_model, text, factor, include_first)
            assert prof.kl[f] == pytest.approx(ref["kl"] / ref["n"], rel=1e-6, abs=1e-15)
            assert prof.top1_agreement[f] == ref["top1"] / ref["n"]
            assert prof.nll_change[f] == pytest.approx(ref["nll"] / ref["n_next"], rel=1e-6, abs=1e-15)
            assert prof.prediction_positions[0] == ref["n"] and prof.next_token_positions[0] == ref["n_next"]
    assert ref["kl"] > 1e-4  # the last factor moved the predictions: the comparison was not of zeros


@pytest.mark.parametrize("options", [{}, {"include_first_token": True}, {"reuse_prefix": True}, {"vocab_chunk": 3000}])
def test_factor_one_is_exactly_zero_one_zero_in_exact_mode(subject, options):
    vocab_chunk = options.pop("vocab_chunk", None)
    clean = CleanPass(subject, PROMPTS, predictions=True, vocab_chunk=vocab_chunk, record_block_inputs=options.get("reuse_prefix", False))
    prof = run(subject, None, (1.0, 0.5), clean=clean, factor_batch=1, **options)
    assert prof.kl[0] == 0.0 and prof.top1_agreement[0] == 1.0 and prof.nll_change[0] == 0.0
    assert (prof.prompt_kl[0] == 0.0).all() and (prof.prompt_top1_agreement[0] == 1.0).all() and (prof.prompt_nll_change[0] == 0.0).all()
    assert prof.kl[1] > 0.0


def test_kl_is_nonnegative_and_grows_away_from_one(subject):
    grid = (0.5, 0.7, 0.9, 1.1, 1.3, 1.5)
    prof = run(subject, PROMPTS, grid)
    assert (prof.kl > 0).all() and (prof.prompt_kl > 0).all()
    assert prof.kl[0] > prof.kl[1] > prof.kl[2] and prof.kl[3] < prof.kl[4] < prof.kl[5]
    assert ((0 <= prof.top1_agreement) & (prof.top1_agreement <= 1)).all()


def test_batched_and_chunked_equal_one_prompt_at_a_time(subject):
    """Padded batches, prompt chunks (a 1 MiB budget cuts one prompt per chunk) and stacked factors, against batch-of-one runs."""
    alone = [run(subject, [text], FACTORS) for text in PROMPTS]
    positions = np.array([a.prediction_positions[0] for a in alone])
    next_positions = np.array([a.next_token_positions[0] for a in alone])
    expected = {
        "kl": sum(a.kl * n for a, n in zip(alone, positions, strict=True)) / positions.sum(),
        "top1_agreement": sum(a.top1_agreement * n for a, n in zip(alone, positions, strict=True)) / positions.sum(),
        "nll_change": sum(a.nll_change * n for a, n in zip(alone, next_positions, strict=True)) / next_positions.sum(),
    }
    chunked_clean = CleanPass(subject, PROMPTS, 1, predictions=True)
    assert len(chunked_clean.chunks) == len(PROMPTS)
    variants = {
        "batched": run(subject, PROMPTS, FACTORS),
        "stacked factors": run(subject, PROMPTS, FACTORS, factor_batch=len(FACTORS)),
        "chunked": run(subject, None, FACTORS, clean=chunked_clean, memory_budget_mb=1),
    }
    for name, prof in variants.items():
        # float32 logits of another batch shape: ~1e-6 absolute noise, so ~1e-6 nats on these measures
        np.testing.assert_allclose(prof.kl, expected["kl"], rtol=1e-4, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(prof.nll_change, expected["nll_change"], rtol=1e-4, atol=1e-6, err_msg=name)
        np.testing.assert_array_equal(prof.top1_agreement, expected["top1_agreement"], err_msg=name)  # no near-ties here
        for p, a in enumerate(alone):
            np.testing.assert_allclose(prof.prompt_kl[:, p], a.kl, rtol=1e-4, atol=1e-6, err_msg=name)


def test_vocabulary_splitting_changes_nothing(subject):
    whole = run(subject, None, FACTORS, clean=CleanPass(subject, PROMPTS, predictions=True, vocab_chunk=None))
    for chunk in (1000, 7777):
        part = run(subject, None, FACTORS, clean=CleanPass(subject, PROMPTS, predictions=True, vocab_chunk=chunk))
        np.testing.assert_allclose(part.kl, whole.kl, rtol=1e-9, atol=1e-15)  # float64 sums in another order
        np.testing.assert_allclose(part.nll_change, whole.nll_change, rtol=1e-9, atol=1e-15)
        np.testing.assert_array_equal(part.top1_agreement, whole.top1_agreement)


def test_peak_memory_does_not_grow_with_factors(subject):
    """factor_batch=1: one factor's logits at a time; only the (F, S, P) Δ sums grow with F."""
    clean = CleanPass(subject, PROMPTS, predictions=True)

    def peak(n_factors: int) -> int:
        with LiveBytes(*_held_tensors(clean)) as live:
            run(subject, None, np.linspace(0.5, 1.5, n_factors), clean=clean, factor_batch=1)
        return live.peak

    small, large = peak(2), peak(12)
    sums_growth = 2 * (12 - 2) * len(subject.sites) * len(PROMPTS) * 4  # delta and delta_all, float32
    logits = max(len(subject.encode(t)["input_ids"]) for t in PROMPTS) * len(PROMPTS) * subject.model.config.vocab_size * 4
    assert small > logits  # the measure sees one factor's logits
    assert large - small <= sums_growth + 4096


def test_predictions_need_a_head_and_a_clean_pass_with_them(subject):
    minilm = load_subject("minilm", device="cpu")
    with pytest.raises(InputError, match="minilm has no masked-LM head"):
        profile(minilm, PROMPTS, LAYER, [0.5], predictions=True)
    assert profile(minilm, PROMPTS, LAYER, [0.5]).kl is None
    with pytest.raises(InputError, match="predictions=True needs a clean pass made with them"):
        profile(subject, None, LAYER, [0.5], clean=CleanPass(subject, PROMPTS), predictions=True)
    plain = profile(subject, PROMPTS, LAYER, [0.5])
    assert plain.kl is None and plain.to_dict()["kl"] is None  # hidden states only: the head never ran


def _held_tensors(clean):
    held = []
    for entry in clean._held.values():
        held += list(entry.states.values())
        held += [
            getattr(entry.logits, name)
            for name in ("logits", "log_normalizer", "top1", "target_logprob", "targets", "weights", "next_weights")
        ]
    return held


def test_cli_json_and_table_carry_the_three_measures(subject, monkeypatch, capsys):
    import json

    from harness import cli

    monkeypatch.setattr(cli, "load_subject_for", lambda settings: subject)
    argv = ["profile", "--model", "random-gpt2", "--layer", str(LAYER), "--factor", "0.5", "--factor", "1", "--prompt", PROMPTS[1]]
    expected = run(subject, [PROMPTS[1]], (0.5, 1.0))
    assert cli.main([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kl"] == expected.kl.tolist() and out["top1_agreement"] == [expected.top1_agreement[0], 1.0]
    assert out["nll_change"] == expected.nll_change.tolist() and "predictions_not_measured" not in out
    assert cli.main(argv) == 0
    rows = [line.split("|") for line in capsys.readouterr().out.splitlines() if line.strip().startswith(("0.5 |", "1 |"))]
    assert [float(r[1]) for r in rows] == pytest.approx(expected.kl.tolist(), rel=1e-5, abs=1e-12)
