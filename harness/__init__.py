"""harness: scale one block's output, measure how far every later layer drifts.

from harness import load_subject, Scale, profile
subject = load_subject("minilm")
prof = profile(subject, ["The cat sat on the mat."], layer=2, factors=[0.5, 1.5])
prof.delta            # (factors, sites) Δ = ‖H_clean − H_scaled‖_F, first token excluded

The engine (torch, transformers) loads on first use of one of its names, so `harness.profile`
(the Profile data), `harness.judgement` and `harness.settings` import without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from harness.errors import HarnessError, InputError, SubjectLoadError
from harness.profile import Profile
from harness.settings import NOTE_FACTORS, NOTE_LAYER, Settings

# Importing harness.profile above bound the name `profile` to that module; in this package the
# name means the function harness.sweep.profile, loaded below on first use.
globals().pop("profile", None)

if TYPE_CHECKING:
    from harness.capture import Capture
    from harness.intervention import Scale
    from harness.prompts import read_prompts, tokenize
    from harness.subjects import Subject, load_subject
    from harness.sweep import CleanPass, profile

# name -> the module that defines it; imported on first access (PEP 562)
_ENGINE = {
    "Capture": "harness.capture",
    "CleanPass": "harness.sweep",
    "Scale": "harness.intervention",
    "Subject": "harness.subjects",
    "load_subject": "harness.subjects",
    "profile": "harness.sweep",
    "read_prompts": "harness.prompts",
    "tokenize": "harness.prompts",
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
    "CleanPass",
    "HarnessError",
    "InputError",
    "Profile",
    "Scale",
    "Settings",
    "Subject",
    "SubjectLoadError",
    "load_subject",
    "profile",
    "read_prompts",
    "tokenize",
]
