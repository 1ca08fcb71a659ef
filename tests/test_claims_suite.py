"""The claims suite as a user runs it: `pytest claims/ ...` in a subprocess, on minilm, small prompt files.

Checks what the verdicts do, not their numbers (those are in test_judgement and test_harness): an
unloadable model stops the session with one message, bad options are usage errors, and a verdict
that differs from its expectation fails in both directions.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ["The old lighthouse keeper climbed the stairs every evening.", "Rain fell on the quiet harbour town all night."]


def _pytest(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    env["HF_HUB_OFFLINE"] = "1"
    cmd = [sys.executable, "-m", "pytest", *args, "-q", "-p", "no:cacheprovider", "--no-report", "--hypothesis-profile", "ci"]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.txt"
    path.write_text("\n".join(PROMPTS) + "\n")
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "no-such/model"], "cannot run the claims: Cannot load model 'no-such/model'"),
        (["--model", "/no/such/dir"], "is not a directory"),
        (["--model", "minilm", "--layer", "9"], "layer 9 is outside minilm's blocks"),
        (["--model", "minilm", "--layer", "two"], "--layer 'two' is not an integer"),
        (["--model", "minilm", "--dtype", "int4"], "dtype 'int4' is not supported"),
        (["--model", "minilm", "--prompts", "/no/such/file"], "--prompts '/no/such/file' does not exist"),
        (["--model", "minilm", "--expectations", "/no/such.toml"], "--expectations '/no/such.toml' does not exist"),
    ],
)
def test_bad_options_stop_the_session_with_one_message(args, message, tmp_path):
    run = _pytest("claims/", *args, tmp_path=tmp_path)
    assert run.returncode == 4, run.stdout + run.stderr
    assert message in run.stderr and "Traceback" not in run.stderr + run.stdout
    assert "passed" not in run.stdout and "failed" not in run.stdout


def _flipped(tmp_path: Path, claim: str, verdict: str) -> Path:
    """A copy of harness/note/expectations.toml with minilm's `claim` expecting `verdict`."""
    text = (ROOT / "harness" / "note" / "expectations.toml").read_text(encoding="utf-8")
    section = text[text.index("[minilm]") :]
    line = next(ln for ln in section.splitlines() if ln.startswith(f"{claim} = "))
    path = tmp_path / "expectations.toml"
    path.write_text(text.replace(line, f'{claim} = {{ verdict = "{verdict}", reason = "flipped by a test" }}'), encoding="utf-8")
    return path


def test_expected_verdicts_pass_and_a_flipped_one_fails_both_ways(prompts, tmp_path):
    base = ["--model", "minilm", "--prompts", str(prompts)]
    as_recorded = _pytest("claims/test_c1_no_change_before.py", "claims/test_c3_growth.py", *base, tmp_path=tmp_path)
    assert as_recorded.returncode == 0, as_recorded.stdout[-2000:]

    refuted = _pytest("claims/test_c3_growth.py", *base, "--expectations", str(_flipped(tmp_path, "C3", "holds")), tmp_path=tmp_path)
    assert refuted.returncode == 1 and "C3 refuted on minilm" in refuted.stdout, refuted.stdout[-2000:]

    unexpected = _pytest(
        "claims/test_c1_no_change_before.py", *base, "--expectations", str(_flipped(tmp_path, "C1", "refuted")), tmp_path=tmp_path
    )
    assert unexpected.returncode == 1 and "C1 unexpected pass on minilm" in unexpected.stdout, unexpected.stdout[-2000:]


def test_update_expectations_writes_what_was_measured(prompts, tmp_path):
    path = _flipped(tmp_path, "C3", "holds")
    run = _pytest(
        "claims/test_c3_growth.py",
        "--model",
        "minilm",
        "--prompts",
        str(prompts),
        "--expectations",
        str(path),
        "--update-expectations",
        tmp_path=tmp_path,
    )
    assert run.returncode == 1  # this run still judged against the flipped file
    table = tomllib.loads(path.read_text(encoding="utf-8"))
    assert table["minilm"]["C3"]["verdict"] == "refuted" and table["minilm"]["C3"]["reason"].startswith("measured: ")
    assert "random-gpt2" in table and "gpt2" in table  # other models kept
