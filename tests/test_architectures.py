"""Every row of harness/model/architectures.py, on a tiny random checkpoint loaded through `--model DIR`.

For each architecture a model with 3 blocks and d_model 32 is built from its config class (no
download), saved with a small offline tokenizer (safetensors) and loaded with `load_subject(dir)`,
the path a user's `--model DIR` takes. Then, against independent oracles:
  (a) every site equals the entry of HuggingFace's own `output_hidden_states` that the row's
      `hf_entries` names, bit for bit, in the same forward;
  (b) `profile` gives Δ exactly 0 before block L and |1 − s|·‖H_L‖ at it;
  (c) no hook survives an exception inside `Scale` / `Capture`;
  (d) the LM head: `subject.logits` equals the head model's own logits bit for bit (a checkpoint
      saved from *ForCausalLM / *ForMaskedLM), and a checkpoint without head weights gives no head.
Adding an architecture is its row plus an entry in TINY below; test_every_row_has_a_tiny_case
fails until both exist.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harness import Capture, Scale, load_subject, profile
from harness.errors import InputError
from harness.model.architectures import ARCHITECTURES

PROMPTS = ["The cat sat on the mat and looked at the dog.", "A dog ran to the red door of the house.", "The sun is warm today."]
_WORDS = sorted({w.strip(".").lower() for p in PROMPTS for w in p.split()} | {"hello", "world", "."})
_SPECIALS = ["<unk>", "<pad>", "<s>", "</s>", "[CLS]", "[SEP]"]
_DIMS = {"num_hidden_layers": 3, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}
_ROTARY = {**_DIMS, "num_key_value_heads": 1, "head_dim": 16}
_IDS = {"vocab_size": 64, "max_position_embeddings": 64, "pad_token_id": 1, "bos_token_id": 2, "eos_token_id": 3}

# case -> (model_type, config kwargs). Small enough that the whole file runs in seconds.
TINY: dict[str, tuple[str, dict[str, object]]] = {
    "gpt2": ("gpt2", {"n_layer": 3, "n_embd": 32, "n_head": 2, "n_positions": 64, "vocab_size": 64, "bos_token_id": 2, "eos_token_id": 3}),
    "gpt_neo": (
        "gpt_neo",
        {
            "num_layers": 3,
            "hidden_size": 32,
            "num_heads": 2,
            "attention_types": [[["global", "local"], 1], [["global"], 1]],
            "window_size": 4,
            "max_position_embeddings": 64,
            "vocab_size": 64,
            "bos_token_id": 2,
            "eos_token_id": 3,
        },
    ),
    "gpt_neox": ("gpt_neox", {**_DIMS, **_IDS, "use_parallel_residual": True}),
    "gptj": (
        "gptj",
        {
            "n_layer": 3,
            "n_embd": 32,
            "n_head": 2,
            "rotary_dim": 8,
            "n_positions": 64,
            "vocab_size": 64,
            "bos_token_id": 2,
            "eos_token_id": 3,
        },
    ),
    "opt": ("opt", {**_DIMS, **_IDS, "ffn_dim": 64}),
    "opt-350m-like": ("opt", {**_DIMS, **_IDS, "ffn_dim": 64, "word_embed_proj_dim": 16, "do_layer_norm_before": False}),
    "llama": ("llama", {**_ROTARY, **_IDS}),
    "mistral": ("mistral", {**_ROTARY, **_IDS, "sliding_window": 4}),
    "qwen2": ("qwen2", {**_ROTARY, **_IDS}),
    "qwen3": ("qwen3", {**_ROTARY, **_IDS}),
    "gemma": ("gemma", {**_ROTARY, **_IDS}),
    "gemma2": ("gemma2", {**_ROTARY, **_IDS, "sliding_window": 4}),
    "phi3": ("phi3", {**_DIMS, **_IDS, "num_key_value_heads": 1}),
    "bert": ("bert", {**_DIMS, **_IDS}),
    "roberta": ("roberta", {**_DIMS, **_IDS, "max_position_embeddings": 66}),
    "distilbert": ("distilbert", {"n_layers": 3, "dim": 32, "n_heads": 2, "hidden_dim": 64, **_IDS}),
}


def tiny_tokenizer(style: str) -> object:
    """A word-level tokenizer over the test prompts: style "bos" adds <s>, "cls" wraps in [CLS] … [SEP], "none" adds nothing."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(_SPECIALS + _WORDS)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    if style == "bos":
        core.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", vocab["<s>"])])
    elif style == "cls":
        core.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
        )
    specials = {"unk_token": "<unk>", "pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>"}
    if style == "cls":
        specials.update(cls_token="[CLS]", sep_token="[SEP]")
    return PreTrainedTokenizerFast(tokenizer_object=core, **specials)


def save_tiny(case: str, directory: Path, seed: int = 0, head: bool = False, **changes: object) -> Path:
    """Build TINY[case] (with `changes` to its config) from its config class, save model + tokenizer as a checkpoint directory.

    head=True saves the *ForCausalLM / *ForMaskedLM model (base and LM head); else the base model alone.
    """
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM

    model_type, kwargs = TINY[case]
    kwargs = {**kwargs, **changes}
    spec = ARCHITECTURES[model_type]
    torch.manual_seed(seed)
    auto = AutoModel if not head else AutoModelForCausalLM if spec.kind == "decoder" else AutoModelForMaskedLM
    model = auto.from_config(AutoConfig.for_model(model_type, **kwargs))
    model.save_pretrained(directory)  # safetensors
    style = "cls" if spec.kind == "encoder" else "bos" if spec.first_token.startswith("BOS") else "none"
    tiny_tokenizer(style).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module", params=sorted(TINY))
def subject(request, tmp_path_factory):
    directory = save_tiny(request.param, tmp_path_factory.mktemp(request.param))
    return load_subject(str(directory), device="cpu")


def _hooks(subject) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in subject.model.modules())


def _batch(subject, text: str) -> dict[str, torch.Tensor]:
    return {k: torch.tensor([v]) for k, v in subject.encode(text).items()}


def test_every_row_has_a_tiny_case():
    assert {model_type for model_type, _ in TINY.values()} == set(ARCHITECTURES)


def test_loads_through_the_directory_path_with_the_rows_layout(subject):
    spec = subject.spec
    assert subject.n_blocks == 3 and subject.sites[:2] == ("embed", "block.0")
    assert type(subject.model).base_model_prefix == spec.base_prefix  # where an LM head model keeps this base model
    assert subject.revision.startswith("sha256:") and subject.source.startswith("local directory")
    has_norm = subject.final_norm is not None
    assert ("final_norm" in subject.sites) == has_norm
    if spec.kind == "encoder" or not spec.flag(subject.model.config, "pre_norm"):
        assert not has_norm  # post-LN: the blocks end in a norm, no final one
    else:
        assert has_norm


def test_sites_agree_bit_for_bit_with_huggingface_hidden_states(subject):
    """(a) One forward: the capture hooks and HF's hidden states see the same tensors."""
    spec = subject.spec
    after = _after_final_norm(subject)
    with torch.inference_mode(), Capture(subject) as capture:
        hf = subject.model(**_batch(subject, PROMPTS[0]), output_hidden_states=True).hidden_states
    names = spec.hf_entries(subject.n_blocks, subject.final_norm is not None, after is not None)
    assert len(hf) == len(names) == subject.n_blocks + 1
    for entry, name in zip(hf, names, strict=True):
        ours = capture.states[name.split("(")[-1].rstrip(")")]
        if after is not None and "(" in name:  # OPT-350m: HF's last entry is project_out(...)
            ours = after(ours)
        torch.testing.assert_close(ours, entry, rtol=0, atol=0, msg=f"{spec.model_type}: {name}")
    last_block = capture.states[f"block.{subject.n_blocks - 1}"]
    if spec.kind == "decoder":  # the last entry is post-norm (or projected): the raw last block is not among them
        assert names[-1] != f"block.{subject.n_blocks - 1}" or after is not None
        assert last_block.shape != hf[-1].shape or not torch.equal(last_block, hf[-1])
    else:
        assert torch.equal(last_block, hf[-1])


@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_delta_zero_before_and_identity_at_the_layer(subject, factor):
    """(b) factor_batch=1: the scaled forward has the clean pass's shapes, so the blocks before L are bit-identical."""
    layer = 1
    prof = profile(subject, PROMPTS, layer, [factor], factor_batch=1)
    at = subject.site_index(f"block.{layer}")
    assert np.all(prof.delta[0, :at] == 0.0) and np.all(prof.delta_all_tokens[0, :at] == 0.0)
    # independent ‖H_L‖: one prompt per forward (batch 1), first token excluded; other batch shape, so rounding differs
    squares = 0.0
    for text in PROMPTS:
        with torch.inference_mode(), Capture(subject, sites=(f"block.{layer}",)) as capture:
            subject.model(**_batch(subject, text))
        squares += float(capture.states[f"block.{layer}"][0, 1:].double().pow(2).sum())
    assert prof.delta[0, at] == pytest.approx(abs(1.0 - factor) * squares**0.5, rel=1e-5)
    assert np.all(prof.delta[0, at + 1 :] > 0.0)  # the scaling reaches every later site


def test_no_hook_left_after_an_exception(subject):
    """(c) Scale and Capture remove exactly their hooks when the forward raises or is interrupted."""
    before = _hooks(subject)
    batch = _batch(subject, PROMPTS[2])
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):

        def explode(module, args, output, exc=exc):
            raise exc

        handle = subject.blocks[2].register_forward_hook(explode)
        try:
            with pytest.raises(type(exc)), Scale(subject, 1, 0.5), Capture(subject):
                subject.model(**batch)
        finally:
            handle.remove()
        assert _hooks(subject) == before


@pytest.mark.parametrize("case", sorted(TINY))
def test_lm_head_logits_equal_huggingface_bit_for_bit(case, tmp_path):
    """(d) Same weights, same batch: our head on the base model's last output is HF's head model's forward."""
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    directory = save_tiny(case, tmp_path / case, head=True)
    subject = load_subject(str(directory), device="cpu")
    assert subject.head is not None, subject.head_note
    auto = AutoModelForCausalLM if subject.spec.kind == "decoder" else AutoModelForMaskedLM
    reference = auto.from_pretrained(str(directory), use_safetensors=True, use_kernels=False).eval()
    batch = _batch(subject, PROMPTS[1])
    with torch.inference_mode():
        expected = reference(**batch).logits
        got = subject.logits(subject.model(**batch).last_hidden_state)
    assert got.shape == expected.shape and torch.equal(got, expected)
    if subject.spec.logit_softcap:  # Gemma 2: the soft-capping is part of the head
        assert float(got.abs().max()) < getattr(reference.config, subject.spec.logit_softcap)


def test_no_head_weights_means_no_head(subject):
    """(d) A base-model checkpoint: tied heads (the embeddings) are whole; untied ones are missing, so no head, never a random one."""
    tied = subject.spec.kind == "decoder" and bool(getattr(subject.model.config, "tie_word_embeddings", False))
    assert (subject.head is not None) == tied, subject.head_note
    if subject.head is None:
        assert "lacks its weights" in subject.head_note
        with pytest.raises(InputError, match="cannot be measured"):
            subject.logits(torch.zeros(1, 2, 32))
    else:
        assert subject.head.layers[0].weight is _input_embeddings(subject).weight


def _input_embeddings(subject):
    return subject.model.get_input_embeddings()


def _after_final_norm(subject):
    spec = subject.spec
    module = subject.model
    for part in (spec.after_final_norm or "").split("."):
        module = getattr(module, part, None) if part else None
    return module


def test_the_tiny_checkpoint_script_makes_a_model_the_loader_takes(tmp_path):
    """scripts/tiny_checkpoint.py (the README's offline worked example) writes a checkpoint `--model DIR` loads."""
    import subprocess
    import sys

    from harness.model.prompts import read_prompts, tokenize
    from harness.note import PROMPTS

    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "tiny-neox"
    done = subprocess.run(
        [sys.executable, str(root / "scripts" / "tiny_checkpoint.py"), "gpt_neox", str(out), "--blocks", "2"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    subject = load_subject(str(out))
    assert subject.n_blocks == 2 and subject.head is not None
    assert subject.describe()["first_token"].startswith("BOS '<s>'")
    assert tokenize(subject, read_prompts(PROMPTS)).n_unknown == 0  # its BPE spells the whole corpus
    again = subprocess.run(
        [sys.executable, str(root / "scripts" / "tiny_checkpoint.py"), "llama", str(out)], capture_output=True, text=True
    )
    assert again.returncode == 2 and "exists and is not empty" in again.stderr  # never overwrites
