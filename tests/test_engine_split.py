"""The engine's layout: Profile is plain data with a JSON round trip, judging imports no torch,
and a block output is unpacked in one place."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from harness import InputError, Profile, load_subject, profile
from harness.model.sites import block_output, call_without_hidden

ROOT = Path(__file__).resolve().parents[1]


def test_profile_survives_its_json_round_trip():
    subject = load_subject("minilm", device="cpu")
    prof = profile(subject, ["The cat sat on the mat.", "Hi there you"], 2, [0.5, 1.5], per_prompt=True)
    back = Profile.from_dict(json.loads(json.dumps(prof.to_dict(), allow_nan=False)))
    for name, value in vars(prof).items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(getattr(back, name), value, err_msg=name)
        else:
            assert getattr(back, name) == value, name
    assert back.to_dict() == prof.to_dict()
    lean = profile(subject, ["Hi there you"], 2, [0.5])  # per_prompt=False: no per-prompt keys, none back
    assert Profile.from_dict(lean.to_dict()).prompt_delta is None
    with pytest.raises(InputError, match="profile data lacks delta"):
        Profile.from_dict({k: v for k, v in prof.to_dict().items() if k != "delta"})


@pytest.mark.parametrize("module", ["harness.measure.record", "harness.judge.verdict", "harness.note"])
def test_reading_and_judging_a_profile_imports_no_torch(module):
    code = f"import sys, {module}; print(sorted(m for m in ('torch', 'transformers', 'harness.measure.sweep') if m in sys.modules))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_harness_profile_module_does_not_reexport_the_engine():
    import harness.measure.record as data

    assert not hasattr(data, "profile") and not hasattr(data, "CleanPass")
    from harness import CleanPass
    from harness import profile as function

    assert callable(function) and function.__module__ == "harness.measure.sweep" and CleanPass.__module__ == "harness.measure.clean"


def test_block_output_is_unpacked_in_one_place():
    hidden = torch.ones(3, 2, 4)
    assert block_output(hidden) is hidden  # a Tensor is the hidden state itself, not its first row
    assert block_output((hidden, "extra")) is hidden
    assert call_without_hidden((hidden, "mask"), {"k": 1}) == (("mask",), {"k": 1})
    assert call_without_hidden((), {"hidden_states": hidden, "k": 1}) == ((), {"k": 1})
    engine = ["measure/capture.py", "intervene/protocol.py", "intervene/edits.py", "measure/replay.py", "measure/sweep.py"]
    for name in engine:  # the isinstance(output, Tensor) test lives in harness/model/sites.py alone
        assert "else output[0]" not in (ROOT / "harness" / name).read_text(), name
