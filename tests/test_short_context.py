"""A model with fewer positions than some prompts' tokens (issue 18): those prompts are left out for it, never truncated.

The subject is scripts/tiny_checkpoint.py's random Llama with 256 positions; on the default corpus its
BPE makes two prompts longer than that. The expected indices come from its tokenizer directly,
not from the harness's encoding; the verdicts' numbers from `profile` on the prompts that fit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness import load_subject, profile
from harness.cli import main as cli_main
from harness.model.prompts import read_prompts

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "harness" / "note" / "prompts.txt"
POSITIONS = 256


@pytest.fixture(scope="module")
def short_llama(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("short") / "llama-256"
    script = ROOT / "scripts" / "tiny_checkpoint.py"
    subprocess.run([sys.executable, str(script), "llama", str(out), "--max-positions", str(POSITIONS)], check=True, capture_output=True)
    return out


def _too_long(model: Path) -> list[int]:
    """Indices of the corpus's prompts longer than the model's positions, by its tokenizer alone."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model))
    return [i for i, text in enumerate(read_prompts(CORPUS)) if len(tokenizer(text)["input_ids"]) > POSITIONS]


def _claims(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    env.update(HF_HUB_OFFLINE="1", CI="true")
    cmd = [sys.executable, "-m", "pytest", "claims/", "-p", "no:cacheprovider", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)


@pytest.mark.slow
def test_the_default_corpus_runs_on_a_256_position_model(short_llama, tmp_path):
    left_out = _too_long(short_llama)
    assert len(left_out) == 2  # the corpus's two long prompts; the rest fit
    report = tmp_path / "r.html"
    run = _claims("--model", str(short_llama), "--report", str(report))
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    note = f"2 of 109 prompts exceed the {POSITIONS} positions of {short_llama} and were left out (prompts {left_out[0]}, {left_out[1]})"
    assert f"harness: {note}" in run.stdout  # the pytest header
    doc = json.loads(report.with_suffix(".json").read_text(encoding="utf-8"))
    assert doc["run"]["prompts_left_out"] == left_out and doc["run"]["n_prompts_left_out"] == 2
    assert doc["run"]["models"][0]["n_prompts"] == 107 and doc["run"]["n_prompts"] == 109
    assert note in report.read_text(encoding="utf-8")
    # the verdicts rest on the other 107 prompts: C1's profile is profile() on exactly those
    c1 = next(i for c in doc["claims"] if c["claim"] == "C1" for i in c["items"])
    kept = [t for i, t in enumerate(read_prompts(CORPUS)) if i not in left_out]
    subject = load_subject(str(short_llama), device="cpu")
    expected = profile(subject, kept, c1["layer"], c1["evidence"]["profile"]["factors"])
    assert c1["evidence"]["profile"]["prompt_lengths"] == list(expected.prompt_lengths)
    assert max(expected.prompt_lengths) <= POSITIONS
    np.testing.assert_allclose(np.array(c1["evidence"]["profile"]["delta"], dtype=float), expected.delta, rtol=1e-6)


def test_the_cli_leaves_out_the_same_prompts(short_llama, capsys):
    left_out = _too_long(short_llama)
    code = cli_main(["profile", "--model", str(short_llama), "--prompts", str(CORPUS), "--layer", "2", "--factor", "0.5", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = json.loads(captured.out)
    assert out["prompts_left_out"] == left_out and out["n_prompts_left_out"] == 2 and out["n_prompts"] == 107
    assert len(out["prompt_lengths"]) == 107
    assert f"note: 2 of 109 prompts exceed the {POSITIONS} positions of {short_llama} and were left out" in captured.err


def test_fewer_than_eight_prompts_left_stops_with_one_line(short_llama, tmp_path, capsys):
    prompts = tmp_path / "p.txt"
    texts = read_prompts(CORPUS)
    left_out = _too_long(short_llama)
    prompts.write_text("\n".join([texts[i] for i in left_out] + texts[:6]) + "\n", encoding="utf-8")
    code = cli_main(["profile", "--model", str(short_llama), "--prompts", str(prompts), "--factor", "0.5"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert f"2 of 8 prompts exceed the {POSITIONS} positions of {short_llama}" in err and "leaving 6, fewer than the 8" in err


def test_tables_across_models_say_when_their_corpora_differ():
    from harness.report.render import corpora_note, render_html

    note = "2 of 109 prompts exceed the 256 positions of b and were left out (prompts 107, 108)"
    full = {"model": "a", "n_prompts": 109, "n_prompts_left_out": 0}
    cut = {"model": "b", "n_prompts": 107, "n_prompts_left_out": 2, "prompts_left_out": [107, 108], "prompts_left_out_note": note}
    assert corpora_note([full, {**full, "model": "c"}]) is None
    said = corpora_note([full, cut])
    assert said is not None and "b measured 107 (2 left out" in said and "corpora differ" in said
    doc = {"format": "claims-report/1", "run": {"model": "a, b", "models": [full, cut]}, "session": {}, "claims": [], "unassigned": []}
    page = render_html(doc)
    assert note in page and "corpora differ" in page
    assert "corpora differ" not in render_html({**doc, "run": {"model": "a, c", "models": [full, {**full, "model": "c"}]}})
