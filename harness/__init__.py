"""harness: scale one block's output, measure how far every later layer drifts.

from harness import load_subject, Scale, profile
subject = load_subject("minilm")
prof = profile(subject, ["The cat sat on the mat."], layer=2, factors=[0.5, 1.5])
prof.delta            # (factors, sites) Δ = ‖H_clean − H_scaled‖_F, first token excluded

from harness import Claim, Threshold, claim_tests   # a claim of your own (README, "Write your own claim")

The engine (torch, transformers) loads on first use of one of its names, so
`harness.measure.record` (the Profile data), `harness.judge` and `harness.settings` import without torch.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING

try:
    from harness.errors import HarnessError, InputError, SubjectLoadError
    from harness.judge.claim import Claim, Threshold, View
    from harness.measure.record import Profile
    from harness.settings import NOTE_FACTORS, NOTE_LAYER, Settings
except KeyboardInterrupt:
    if sys.argv[:1] != ["-m"]:  # imported by a program: its own Ctrl-C
        raise
    # `python -m harness` (runpy imports the package with argv[0] "-m"): the CLI's boundary, as in harness.__main__
    sys.stderr.write("interrupted (Ctrl-C) while the harness was starting: nothing was run or written.\n")
    raise SystemExit(130) from None  # harness.errors.INTERRUPTED_EXIT

if TYPE_CHECKING:
    from harness.intervene.edits import Scale
    from harness.measure.capture import Capture
    from harness.measure.clean import CleanPass
    from harness.measure.sweep import profile
    from harness.model import Subject, load_subject
    from harness.model.prompts import read_prompts, tokenize
    from harness.suite.checks import claim_tests

# name -> the module that defines it; imported on first access (PEP 562)
_ENGINE = {
    "Capture": "harness.measure.capture",
    "CleanPass": "harness.measure.clean",
    "Scale": "harness.intervene.edits",
    "Subject": "harness.model",
    "load_subject": "harness.model",
    "profile": "harness.measure.sweep",
    "read_prompts": "harness.model.prompts",
    "tokenize": "harness.model.prompts",
    "claim_tests": "harness.suite.checks",  # pytest
}


def __getattr__(name: str) -> object:
    if name not in _ENGINE:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    value = getattr(importlib.import_module(_ENGINE[name]), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_ENGINE))


__all__ = [
    "NOTE_FACTORS",
    "NOTE_LAYER",
    "Capture",
    "Claim",
    "CleanPass",
    "HarnessError",
    "InputError",
    "Profile",
    "Scale",
    "Settings",
    "Subject",
    "SubjectLoadError",
    "Threshold",
    "View",
    "claim_tests",
    "load_subject",
    "profile",
    "read_prompts",
    "tokenize",
]
