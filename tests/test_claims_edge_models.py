"""Claims runs on the edges of what a model or a dtype allows (issue 19, rows 11, 12 and 17), as a user runs them.

- `--dtype auto` (HARNESS_DTYPE=auto): the thresholds keyed by dtype use the subject's resolved dtype.
- a one-block model with `--layer 0 --layers all`: every claim runs or says why not, no traceback.
- a model too shallow for a claim: the skip reason says so, never "give a layer of at most -1".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = "\n".join(
    f"Prompt {i}: the keeper climbed the stairs of the old lighthouse and looked at the harbour." for i in range(8)
)


def _claims(*args: str, tmp_path: Path, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    env.update(HF_HUB_OFFLINE="1", CI="true", **(env_extra or {}))
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(PROMPTS + "\n", encoding="utf-8")
    cmd = [sys.executable, "-m", "pytest", "claims/", "-q", "-rs", "-p", "no:cacheprovider", "--prompts", str(prompts), *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


def _tiny(tmp_path: Path, blocks: int) -> Path:
    out = tmp_path / f"llama-{blocks}"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "tiny_checkpoint.py"), "llama", str(out), "--blocks", str(blocks)], check=True)
    return out


def test_dtype_auto_judges_c0_and_c1_with_the_resolved_dtype(tmp_path):
    report = tmp_path / "r.html"
    run = _claims("--model", "minilm", "-k", "C0 or C1", "--report", str(report), tmp_path=tmp_path, env_extra={"HARNESS_DTYPE": "auto"})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "KeyError" not in run.stdout + run.stderr and " passed" in run.stdout
    doc = json.loads(report.with_suffix(".json").read_text(encoding="utf-8"))
    c1 = next(c for c in doc["claims"] if c["claim"] == "C1")
    assert {item["threshold"] for item in c1["items"] if item.get("threshold") is not None} == {1e-5}  # minilm's own dtype: float32


def test_a_one_block_model_with_the_layer_map_runs_every_claim_or_says_why_not(tmp_path):
    model = _tiny(tmp_path, 1)
    run = _claims("--model", str(model), "--layer", "0", "--layers", "all", "--no-report", tmp_path=tmp_path)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    assert "Traceback" not in out and "block.-1" not in out
    assert f"{model} is too shallow for C3: it has 1 block(s)" in out
    assert f"{model} is too shallow for C4: it has 1 block" in out
    assert "at most -" not in out


@pytest.mark.parametrize("blocks", [2, 3])
def test_a_model_too_shallow_for_c3_is_told_so(tmp_path, blocks):
    model = _tiny(tmp_path, blocks)
    run = _claims("--model", str(model), "--layer", "0", "-k", "C3", "--no-report", tmp_path=tmp_path)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    assert f"{model} is too shallow for C3: it has {blocks} block(s)" in out and "at most -" not in out
