"""The loader against hostile and careless input (issue 12 rows 1, 7, 11 and 13's layer), and the first-token option.

Each bad checkpoint is a tiny valid one (tests/test_architectures.py) with one thing broken. Every
case asserts the one message (it names the file, the keys or the value, and what is allowed) and
that nothing else happened: the checkpoint directory is byte-for-byte as it was, no model came back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_architectures import PROMPTS, save_tiny, tiny_tokenizer

from harness import InputError, SubjectLoadError, load_subject
from harness.model import resolve_device, resolve_dtype
from harness.model.architectures import ARCHITECTURES


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """One valid tiny GPT-2 checkpoint (3 blocks), copied by each test before it is broken."""
    return save_tiny("gpt2", tmp_path_factory.mktemp("pristine"))


@pytest.fixture
def checkpoint(pristine, tmp_path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "ckpt"))


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def _refused(directory: Path, *patterns: str, **options) -> str:
    """load_subject(directory) must raise one SubjectLoadError matching every pattern and change no file."""
    before = _snapshot(directory)
    with pytest.raises(SubjectLoadError) as caught:
        load_subject(str(directory), device="cpu", **options)
    message = str(caught.value)
    for pattern in patterns:
        assert pattern in message, f"{pattern!r} not in: {message}"
    assert "Traceback" not in message and _snapshot(directory) == before
    return message


def _edit_config(directory: Path, **changes) -> None:
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, **changes}))


# ---------------------------------------------------------------------------------------------
# Row 1: config and weights disagree -> a load error that names the keys


@pytest.fixture(scope="module")
def twelve_blocks(tmp_path_factory) -> Path:
    """GPT-2's depth (12 blocks) at width 32: one block more or less is within 10% of the weights, as on GPT-2 small."""
    return save_tiny("gpt2", tmp_path_factory.mktemp("twelve"), n_layer=12)


def test_config_with_more_blocks_than_the_weights_is_refused(twelve_blocks, tmp_path):
    checkpoint = Path(shutil.copytree(twelve_blocks, tmp_path / "ckpt"))
    _edit_config(checkpoint, n_layer=13)  # block 12 would be randomly initialised and measured
    message = _refused(
        checkpoint,
        "do not match its config.json",
        "(13 blocks configured)",
        "blocks stored (12 blocks, 0 to 11; the config has 13: 13 blocks, 0 to 12)",
        "12 missing from the weights",
        "h.12.attn.c_attn.weight",
    )
    assert "h.11." not in message  # only block 12's keys are missing


def test_config_with_fewer_blocks_than_the_weights_is_refused(twelve_blocks, tmp_path):
    checkpoint = Path(shutil.copytree(twelve_blocks, tmp_path / "ckpt"))
    _edit_config(checkpoint, n_layer=6)  # blocks 6-11 would be dropped silently
    _refused(
        checkpoint,
        "(6 blocks configured)",
        "blocks stored (12 blocks, 0 to 11; the config has 6: 6 blocks, 0 to 5)",
        "66 in the weights but not in the model",  # 6 blocks x 11 keys: HF's own ignore list hides c_attn.bias
        "h.10.attn.c_attn.weight",
        "and 60 more",
    )


def test_weights_of_the_wrong_shape_are_refused(checkpoint):
    _edit_config(checkpoint, vocab_size=80)  # wte is (64, 32) in the weights
    _refused(checkpoint, "of the wrong shape", "wte.weight (weights (64, 32), config (80, 32))")


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"model_type": "llama"}, "describes a llama model of 6,476,533,760 parameters and 32 blocks"),  # Llama's defaults: 7B
        ({"n_layer": 30}, "describes a gpt2 model of 385,280 parameters and 30 blocks"),
        ({"n_head": 5}, "describes a model that cannot be built (ValueError"),
    ],
)
def test_a_config_far_from_its_weights_is_refused_before_anything_is_allocated(checkpoint, changes, said):
    _edit_config(checkpoint, **changes)  # would build (and randomly initialise) the whole described model
    _refused(checkpoint, said, "42,272 values" if "parameters" in said else "config.json")


def test_head_weights_and_rebuilt_buffers_are_tolerated(tmp_path):
    """Real checkpoints carry an LM head (untied in Llama, cls.* in BERT's MLM) and no pooler: these load."""
    from transformers import BertConfig, BertForMaskedLM, LlamaConfig, LlamaForCausalLM

    llama = LlamaForCausalLM(
        LlamaConfig(
            num_hidden_layers=2,
            hidden_size=32,
            num_attention_heads=2,
            intermediate_size=64,
            vocab_size=64,
            tie_word_embeddings=False,
            pad_token_id=1,
            bos_token_id=2,
            eos_token_id=3,
        )
    )
    bert = BertForMaskedLM(BertConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64, vocab_size=64))
    for name, model, style in (("llama", llama, "bos"), ("bert", bert, "cls")):
        model.save_pretrained(tmp_path / name)
        tiny_tokenizer(style).save_pretrained(tmp_path / name)
        subject = load_subject(str(tmp_path / name), device="cpu")
        reference = getattr(model, ARCHITECTURES[name].base_prefix)  # the head model's base, as saved
        for key, value in subject.model.state_dict().items():
            if "pooler" not in key:  # MLM checkpoints have no pooler: it is initialised, and never a site
                assert torch.equal(value, reference.state_dict()[key]), key
    assert load_subject("minilm", device="cpu").n_blocks == 6  # its checkpoint has every key, pooler included


# ---------------------------------------------------------------------------------------------
# Row 7: broken files -> one SubjectLoadError naming the file


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ("{not json", "is not valid JSON"),
        ("", "is empty"),
        ('{"n_layer": 3}', 'has no "model_type" key'),
        ("[1, 2]", 'has no "model_type" key'),
    ],
)
def test_broken_config_names_the_file(checkpoint, content, said):
    (checkpoint / "config.json").write_text(content)
    _refused(checkpoint, str(checkpoint / "config.json"), said)


def test_unknown_model_type_lists_the_supported_ones_and_where_to_add_one(checkpoint):
    _edit_config(checkpoint, model_type="mamba")
    message = _refused(checkpoint, "model_type 'mamba'", "harness/model/architectures.py", str(checkpoint / "config.json"))
    assert all(model_type in message for model_type in ARCHITECTURES)


@pytest.mark.parametrize("damage", ["empty", "truncated", "random", "header only"])
def test_broken_weights_name_the_file(checkpoint, damage):
    weights = checkpoint / "model.safetensors"
    data = weights.read_bytes()
    broken = {"empty": b"", "truncated": data[: len(data) // 2], "random": os.urandom(4096), "header only": data[:6]}[damage]
    weights.write_bytes(broken)
    _refused(checkpoint, f"{weights} ({len(broken)} bytes", "not a safetensors file")


@pytest.mark.parametrize("content", ["", "garbage", '{"version": "1.0", "model": 5}'])
def test_broken_tokenizer_names_the_file(checkpoint, content):
    (checkpoint / "tokenizer.json").write_text(content)
    _refused(checkpoint, "its tokenizer in", "tokenizer.json", "tokenizer.save_pretrained")


def test_cli_gives_one_line_and_exit_2(checkpoint):
    (checkpoint / "model.safetensors").write_bytes(b"")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "harness", "profile", "--model", str(checkpoint), "--device", "cpu", "--prompt", PROMPTS[0]],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.startswith("error: Cannot load model") and "model.safetensors (0 bytes" in run.stderr


# ---------------------------------------------------------------------------------------------
# Row 11: device strings, checked before CUDA is asked and before anything loads


@pytest.mark.parametrize("device", ["cuda:x", "cuda:-1", "cuda: 0", "cuda:1.5", "CUDA", "gpu", "cpu:0", "", "cuda:"])
@pytest.mark.parametrize("cuda_host", [False, True])
def test_malformed_device_names_the_value_and_the_forms(monkeypatch, device, cuda_host):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda_host)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2 if cuda_host else 0)
    with pytest.raises(InputError, match=rf"device {device!r} is not a device this harness can use: write auto, cpu, cuda or cuda:N"):
        load_subject("no-such-model-is-ever-loaded", device=device)


def test_well_formed_devices_on_a_cuda_host(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1) and resolve_device("auto") == torch.device("cuda")
    with pytest.raises(InputError, match=r"device 'cuda:2' does not exist: this machine has cuda:0 to cuda:1"):
        resolve_device("cuda:2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match=r"device 'cuda:0' was asked for but CUDA is not available"):
        resolve_device("cuda:0")


# ---------------------------------------------------------------------------------------------
# dtype "auto", layer as an integer-like value, the first token


def test_dtype_auto_is_the_checkpoints_own(checkpoint):
    _edit_config(checkpoint, dtype="bfloat16")
    subject = load_subject(str(checkpoint), device="cpu", dtype="auto")
    assert subject.dtype == torch.bfloat16 and next(subject.model.parameters()).dtype == torch.bfloat16
    assert resolve_dtype("auto") == torch.float32  # a checkpoint that records none: HF's default
    with pytest.raises(InputError, match=r"dtype 'float64' is not supported: choose one of auto, float32, bfloat16, float16"):
        resolve_dtype("float64")


@pytest.fixture(scope="module")
def tiny(pristine):
    return load_subject(str(pristine), device="cpu")


@pytest.mark.parametrize("layer", [np.int64(2), np.int32(0), torch.tensor(1)])
def test_integer_like_layers_are_accepted(tiny, layer):
    assert tiny.check_layer(layer) == int(layer) and type(tiny.check_layer(layer)) is int


@pytest.mark.parametrize(
    ("layer", "said"),
    [
        (2.0, "must be an integer"),
        ("2", "must be an integer"),
        (True, "must be an integer, not a bool"),
        (3, "is outside"),
        (-1, "is outside"),
        (np.float64(1.0), "must be an integer"),
    ],
)
def test_bad_layers_say_what_is_wrong(tiny, layer, said):
    with pytest.raises(InputError, match=rf"layer .* {said}.*give an integer from 0 to 2"):
        tiny.check_layer(layer)


@pytest.mark.parametrize(
    ("case", "policy", "first", "said"),
    [
        ("gpt2", "auto", "the", "the prompt's first token (the tokenizer adds no BOS)"),
        ("gpt2", "yes", "<s>", "BOS '<s>' (id 2), prepended by prepend_bos='yes'"),
        ("llama", "auto", "<s>", "BOS '<s>' (id 2), added by the tokenizer"),
        ("llama", "no", "the", "the tokenizer's BOS '<s>' (id 2) removed by prepend_bos='no'"),
        ("bert", "auto", "[CLS]", "CLS token '[CLS]' (id 4), added by the tokenizer"),
    ],
)
def test_first_token_follows_prepend_bos(tmp_path, case, policy, first, said):
    subject = load_subject(str(save_tiny(case, tmp_path / case)), device="cpu", prepend_bos=policy)
    assert said in subject.describe()["first_token"] and subject.describe()["prepend_bos"] == policy
    ids = subject.encode(PROMPTS[2])["input_ids"]
    plain = subject.tokenizer(PROMPTS[2], add_special_tokens=False)["input_ids"]
    assert subject.tokenizer.convert_ids_to_tokens(ids[0]) == first
    assert ids[ids.index(plain[0]) :][: len(plain)] == plain and len(ids) - len(plain) == (first != "the") + (case == "bert")


def test_prepend_bos_refusals(tmp_path):
    with pytest.raises(InputError, match=r"prepend_bos 'always' is not allowed: choose one of auto, yes, no"):
        load_subject("no-such-model-is-ever-loaded", device="cpu", prepend_bos="always")
    directory = save_tiny("qwen2", tmp_path / "qwen2")
    tokenizer_config = json.loads((directory / "tokenizer_config.json").read_text())
    (directory / "tokenizer_config.json").write_text(json.dumps({**tokenizer_config, "bos_token": None}))
    with pytest.raises(InputError, match=r"prepend_bos 'yes' cannot be met on .*qwen2: its tokenizer defines no BOS token"):
        load_subject(str(directory), device="cpu", prepend_bos="yes")
    assert load_subject(str(directory), device="cpu").first.start is None  # "auto" on the same files: no BOS
