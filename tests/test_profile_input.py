"""`profile` and `python -m harness profile` take what they document (issue 25, row 10).

- `profile(..., intervention="noise")`: a kind's name is that kind with the defaults; anything else is one line.
- `--include-first-token` measures a one-token prompt (Δ counts that token); without it the refusal names the flag.
- `profile --help` describes the intervention, not only the note's scaling.
- `gpt2` and `openai-community/gpt2` (the Hub's legacy alias) are one model.
- Ctrl-C while `python -m harness` imports torch: one line, exit 130.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness import cli, load_subject, profile
from harness.errors import HarnessError, InputError
from harness.intervene.kinds import InterventionSpec

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ["The cat sat on the mat and looked at the dog.", "Paris is the capital of France."]


@pytest.fixture(scope="module")
def minilm():
    return load_subject("minilm", device="cpu")


def test_a_kinds_name_is_that_kind(minilm):
    by_name = profile(minilm, PROMPTS, 2, [0.5], intervention="noise")
    by_spec = profile(minilm, PROMPTS, 2, [0.5], intervention=InterventionSpec("noise"))
    assert by_name.intervention == "noise"
    np.testing.assert_array_equal(by_name.delta, by_spec.delta)  # same shapes, same kernels: bit for bit


@pytest.mark.parametrize(
    ("intervention", "message"),
    [
        ("nosie", "--intervention 'nosie' is not supported: choose one of scale, scale-update, noise, add, mean-ablate"),
        (3, "intervention=3 is a int: give a kind's name"),
    ],
)
def test_anything_else_is_one_line(minilm, intervention, message):
    with pytest.raises(InputError) as caught:
        profile(minilm, PROMPTS, 2, [0.5], intervention=intervention)
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    """A checkpoint whose tokenizer gives a one-letter prompt one token once its BOS is removed (--prepend-bos no)."""
    out = tmp_path_factory.mktemp("tiny") / "llama"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "tiny_checkpoint.py"), "llama", str(out), "--blocks", "3"], check=True, capture_output=True
    )
    return out


def test_a_one_token_prompt_is_measured_with_the_first_token_counted(tiny_llama, capsys):
    args = ["profile", "--model", str(tiny_llama), "--prepend-bos", "no", "--prompt", "h", "--factor", "0.5"]
    assert cli.main([*args, "--include-first-token", "--json"]) == 0, capsys.readouterr().err
    import json

    out = json.loads(capsys.readouterr().out)
    assert out["prompt_lengths"] == [1] and out["relative_delta_all_tokens"][0][out["sites"].index("block.0")] == 0.0
    assert out["relative_delta_all_tokens"][0][out["sites"].index("block.2")] == pytest.approx(0.5, rel=1e-6)  # |1 − s|
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "is a single token: with the first token excluded" in err and "--include-first-token" in err and err.count("\n") == 1


def test_profile_help_describes_the_intervention(capsys):
    with pytest.raises(SystemExit):
        cli.main(["profile", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Scale one block's output" not in text
    assert "Edit one block's state with an intervention (--intervention, default scale" in text


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("gpt2", "openai-community/gpt2"),
        ("GPT2-medium", "openai-community/gpt2-medium"),
        ("bert-base-uncased", "google-bert/bert-base-uncased"),
    ],
)
def test_a_hub_alias_and_its_repository_are_one_model(a, b):
    from harness.suite.startup import check_distinct

    with pytest.raises(HarnessError) as caught:
        check_distinct([a, b], "--model")
    assert f"--model names one model twice, as {a!r} and {b!r}" in str(caught.value)
    check_distinct(["gpt2", "gpt2-medium", "distilgpt2"], "--model")  # three models


@pytest.mark.parametrize("module", ["numpy", "torch"])
def test_ctrl_c_while_python_m_harness_starts_is_one_line_and_exit_130(tmp_path, module):
    """A module that raises KeyboardInterrupt when imported stands in for Ctrl-C during the real, slow import:
    numpy while the package itself loads (harness/__init__), torch while the command loads the model."""
    (tmp_path / module).mkdir()
    (tmp_path / module / "__init__.py").write_text("raise KeyboardInterrupt\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-m", "harness", "profile", "--model", "minilm", "--prompt", "a b c"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 130 and done.stderr.startswith("interrupted (Ctrl-C)"), done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr


def test_ctrl_c_inside_a_program_that_imports_harness_stays_the_programs(tmp_path):
    (tmp_path / "numpy").mkdir()
    (tmp_path / "numpy" / "__init__.py").write_text("raise KeyboardInterrupt\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    done = subprocess.run([sys.executable, "-c", "import harness"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode != 130 and "KeyboardInterrupt" in done.stderr  # not turned into an exit by a library
