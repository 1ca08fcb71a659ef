"""The claims plugin's state in `config.stash`: one key per thing a session keeps (harness.suite.plugin)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.settings import Settings

SETTINGS = pytest.StashKey[Settings]()  # the first model's settings (the only one's, in a one-model run)
RUNS = pytest.StashKey[list]()  # harness.suite.runs.ModelRun per model, in command-line order
EXPECTATIONS = pytest.StashKey[Path]()  # the expectations file, checked at start-up
TEXTS = pytest.StashKey[list]()  # the corpus as read at start-up (harness.model.prompts.read_prompts)
CORPUS_WARNING = pytest.StashKey[str | None]()  # invisible-only lines skipped in it (PromptFile.warning), or None
CLAIMS_RUN = pytest.StashKey[bool]()  # set up as a claims run (files checked, Hypothesis profile loaded)
INPUTS_CHECKED = pytest.StashKey[bool]()  # the report path checked against the run's inputs
MODULES = pytest.StashKey[set]()  # the paths of the test modules collected (a claim made in one must be judged there)
MARKED = pytest.StashKey[set]()  # ids of the claims the collected tests judge, before -k or -m deselect any
SETTINGS_ERROR = pytest.StashKey[str]()  # why the options could not be read, said only in a claims run

