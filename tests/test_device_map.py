"""A model placed by accelerate (`--device-map auto`, `--max-memory`): blocks offloaded to disk measure as on one device.

A tiny Llama (3 blocks) with its head, loaded twice: whole on the CPU, and through device_map="auto"
with 100 kB of CPU memory, which keeps the embeddings and block 0 on the CPU and offloads blocks 1–2,
the final norm and the head to disk (accelerate reads their weights from the safetensors file at each
forward). The weights and the CPU kernels are the same and so are the batch shapes, so every Δ, every
site and every prediction measure must be identical, bit for bit; the scaled block (1) is one of the
offloaded ones.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_architectures import PROMPTS, save_tiny

from harness import Capture, load_subject, profile
from harness.cli import main as cli_main
from harness.errors import HarnessError, InputError

MEMORY = {"cpu": 100_000}  # bytes: the embeddings and block 0 fit, the rest goes to disk


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny("llama", tmp_path_factory.mktemp("placed") / "llama", head=True)


@pytest.fixture(scope="module")
def pair(checkpoint):
    whole = load_subject(str(checkpoint), device="cpu")
    placed = load_subject(str(checkpoint), device="cpu", device_map="auto", max_memory=MEMORY)
    return whole, placed


def test_blocks_are_offloaded_to_disk(pair):
    _, placed = pair
    assert placed.device_map is not None
    assert placed.device_map["model.layers.0"] == "cpu" and placed.device_map["model.layers.1"] == "disk"
    assert placed.describe()["device_map"].startswith("cpu: model.embed_tokens, model.layers.0; disk: model.layers.1-2")
    assert placed.blocks[1].self_attn.q_proj.weight.device.type == "meta"  # not in memory between forwards


@pytest.mark.parametrize("options", [{}, {"reuse_prefix": True}, {"factor_batch": None}])
def test_offloaded_delta_equals_the_single_device_delta(pair, options):
    whole, placed = pair
    expected = profile(whole, PROMPTS, 1, [0.5, 1.0, 2.0], per_prompt=True, predictions=True, **options)
    got = profile(placed, PROMPTS, 1, [0.5, 1.0, 2.0], per_prompt=True, predictions=True, **options)
    assert expected.delta[0, -1] > 0  # the scaling reached the last site: not a comparison of zeros
    for name in ("delta", "delta_all_tokens", "clean_norm", "prompt_delta", "kl", "top1_agreement", "nll_change"):
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name), err_msg=name)


def test_every_site_is_gathered_on_the_device_and_equals_the_single_device_one(pair):
    whole, placed = pair
    batch = {k: torch.tensor([v]) for k, v in whole.encode(PROMPTS[0]).items()}
    with torch.inference_mode(), Capture(whole) as one, Capture(placed) as two:
        whole.model(**batch)
        placed.model(**batch)
    assert set(one.states) == set(two.states) == set(whole.sites)
    for site, state in one.states.items():
        assert two.states[site].device == placed.device and torch.equal(two.states[site], state), site


def test_the_cli_takes_a_device_map_and_gives_the_same_json(checkpoint, capsys):
    base = ["profile", "--model", str(checkpoint), "--device", "cpu", "--layer", "1", "--factor", "0.5", "--json"]
    for p in PROMPTS:
        base += ["--prompt", p]
    assert cli_main(base) == 0
    whole = json.loads(capsys.readouterr().out)
    assert cli_main([*base, "--device-map", "auto", "--max-memory", "cpu=100kB"]) == 0
    placed = json.loads(capsys.readouterr().out)
    assert placed["delta"] == whole["delta"] and placed["kl"] == whole["kl"]
    assert placed["device_map"] == "auto" and placed["max_memory"] == "cpu=100kB"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--max-memory", "cpu=1GiB"], "is given without device_map: add --device-map auto"),
        (["--device-map", "auto", "--max-memory", "cpu"], "--max-memory 'cpu' is not a memory map"),
        (["--device-map", "auto", "--max-memory", "gpu=1GiB"], "is not a memory map: give DEVICE=SIZE pairs"),
        (["--device-map", "auto", "--max-memory", "cpu=ten"], "has the size 'ten': give a positive number with a unit"),
        (["--device-map", "auto", "--max-memory", "0=1GiB,0=2GiB"], "names 0 twice"),
        (["--device-map", "everywhere"], "--device-map 'everywhere' is not supported: choose one of auto, balanced"),
        (["--device-map", "auto", "--model", "random-gpt2"], "cannot place random-gpt2: it is built in memory"),
    ],
)
def test_bad_placements_are_refused_in_one_line(args, said, capsys):
    model = [] if "--model" in args else ["--model", "minilm"]
    code = cli_main(["profile", *model, *args, "--prompt", "The cat sat on the mat.", "--factor", "0.5"])
    err = capsys.readouterr().err
    assert code == 2 and said in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_max_memory_sizes_are_read_as_accelerate_reads_them():
    from accelerate.utils import convert_file_size_to_int

    from harness.settings import max_memory_of

    got = max_memory_of("0=10GiB,1=500MB,cpu=2048KiB")
    assert got == {0: convert_file_size_to_int("10GiB"), 1: convert_file_size_to_int("500MB"), "cpu": convert_file_size_to_int("2048KiB")}
    with pytest.raises((InputError, HarnessError)):
        load_subject("minilm", max_memory={"cpu": 1})


def test_the_claims_run_on_a_placed_model_and_say_where_it_sits(checkpoint, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS * 3) + "\n", encoding="utf-8")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}, "HF_HUB_OFFLINE": "1", "CI": "true"}
    report = tmp_path / "r.html"
    cmd = [sys.executable, "-m", "pytest", "claims/", "-p", "no:cacheprovider", "-k", "C1 or C2", "--model", str(checkpoint)]
    cmd += ["--layer", "1", "--prompts", str(prompts), "--device-map", "auto", "--max-memory", "cpu=100kB", "--report", str(report)]
    run = subprocess.run(cmd, cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert f"harness: {checkpoint} placed by accelerate: cpu: model.embed_tokens, model.layers.0; disk: model.layers.1-2" in run.stdout
    doc = json.loads(report.with_suffix(".json").read_text(encoding="utf-8"))
    assert doc["run"]["device_map"].startswith("cpu: model.embed_tokens") and "placed by accelerate" in report.read_text(encoding="utf-8")
    c1 = next(i for c in doc["claims"] if c["claim"] == "C1" for i in c["items"])
    whole = load_subject(str(checkpoint), device="cpu")
    expected = profile(whole, PROMPTS * 3, 1, c1["evidence"]["profile"]["factors"])
    assert c1["evidence"]["profile"]["delta"] == expected.delta.tolist()  # the same numbers as on one device
