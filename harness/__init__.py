"""harness: scale one block's output, measure how far every later layer drifts.

from harness import load_subject, Scale, profile
subject = load_subject("minilm")
prof = profile(subject, ["The cat sat on the mat."], layer=2, factors=[0.5, 1.5])
prof.delta            # (factors, sites) Δ = ‖H_clean − H_scaled‖_F, first token excluded
"""

from harness.capture import Capture
from harness.errors import HarnessError, InputError, SubjectLoadError
from harness.intervention import Scale
from harness.profile import CleanPass, Profile, profile
from harness.prompts import read_prompts, tokenize
from harness.settings import NOTE_FACTORS, NOTE_LAYER, Settings
from harness.subjects import Subject, load_subject

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
