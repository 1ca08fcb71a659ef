"""What makes a claims run repeatable: its identity record, the header that prints it, the Hypothesis profiles.

    run_info(config)      # the run record: models, corpus, versions, Hypothesis profile and seed, settings, intervention
    header_lines(config)  # the pytest header's `harness:` lines, from that record

One record, built here only: the header, the report (pytest_claim_report_run_info) and --update-expectations read it.
"""

from __future__ import annotations

import os
import platform
import sys

import pytest
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import InvalidArgument

from harness.intervene.kinds import InterventionSpec
from harness.settings import Settings
from harness.suite.hooks import names_claims, runs_tests
from harness.suite.keys import CORPUS_WARNING, RUNS, TEXTS
from harness.suite.startup import corpus_path

PROFILES = ("ci", "dev", "thorough")  # Hypothesis profiles, registered at import


def header_lines(config: pytest.Config) -> list[str]:
    """The pytest header's harness: lines (the run's identity, warnings, maps); [] before a model is there to name."""
    runs = config.stash.get(RUNS, [])
    if not runs or not (runs[0].subject is not None or (len(runs) > 1 and names_claims(config) and runs_tests(config))):
        return []
    info = run_info(config)
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    if len(runs) > 1:
        first = f"harness: models {info['model']} (each loaded, measured and freed in turn), layer {info['layer']}, "
    else:
        first = f"harness: model {info['model']} ({info['architecture']}, {info['revision']}), layer {info['layer']}, "
    lines = [
        first + f"device {info['device']}, dtype {info['dtype']}, seed {info['settings']['seed']}",
        f"harness: prompts {info['prompts']} ({info['n_prompts']}), hypothesis profile {info['hypothesis_profile']}"
        f" (seed {info['hypothesis_seed']})",
        f"harness: {versions}",
    ]
    if info.get("first_token"):
        lines.append(f"harness: first token: {info['first_token']}")
    for warning in (config.stash.get(CORPUS_WARNING, None), info.get("unknown_tokens_warning")):
        if warning:
            lines.append(f"harness: WARNING {warning}")
    lines += [f"harness: {m['prompts_left_out_note']}" for m in info["models"] if m.get("prompts_left_out_note")]
    lines += [f"harness: {m['model']} placed by accelerate: {m['device_map']}" for m in info["models"] if m.get("device_map")]
    spec = runs[0].settings.intervention_spec()
    if spec != type(spec)():
        lines.append(f"harness: intervention {intervention_line(info['intervention'])}")
    if runs[0].settings.layers is not None:
        lines.append(f"harness: layer map {runs[0].settings.layers} (C1–C5 at each; layers other than {info['layer']} are findings)")
    if runs[0].settings.interventions is not None:
        kinds, own = runs[0].settings.map_interventions(), runs[0].settings.intervention
        lines.append(
            f"harness: intervention map {','.join(kinds)} (C1–C6 under each at block {info['layer']}, one clean pass; "
            f"kinds other than {own} are findings unless [model.KIND] names them)"
        )
    return lines


def run_info(config: pytest.Config) -> dict[str, object]:
    """The run's identity for the header and the report (through pytest_claim_report_run_info)."""
    import hypothesis
    import numpy
    import torch
    import transformers

    from harness.model.prompts import unknown_tokens_warning

    runs = config.stash[RUNS]
    settings = runs[0].settings
    models = [run.info or {**run._asked(), "revision": "not loaded here"} for run in runs]
    if len(runs) == 1:
        about = {k: v for k, v in models[0].items() if k not in ("layers", "n_prompts", "unknown_tokens")}
        if not runs[0].info:
            about["error"] = "the subject was not loaded"
    else:  # each model's own identity is in "models"
        about = {"model": ", ".join(r.model for r in runs), "revision": "per model", "device": settings.device, "dtype": settings.dtype}
    tokens = runs[0].tokens if len(runs) == 1 else None
    texts = config.stash.get(TEXTS, None)  # the corpus as given; each model's record says which prompts it left out
    profile = hypothesis_settings()
    return {
        **about,
        "models": models,
        "layer": settings.layer,
        "prompts": str(corpus_path(settings)),
        "n_prompts": len(texts) if texts is not None else "not read",
        "prompt_texts": texts or [],
        "unknown_tokens": tokens.n_unknown if tokens is not None else None,
        "unknown_tokens_warning": unknown_tokens_warning(tokens) if tokens is not None else None,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "hypothesis": hypothesis.__version__,
            "numpy": numpy.__version__,
        },
        "hypothesis_profile": profile_name(),
        "hypothesis_seed": "derandomized: one seed per claim, from its id (harness.suite.checks.claim_seed)"
        if profile.derandomize
        else config.getoption("hypothesis_seed", None) or "random (repeat a failure with the @reproduce_failure blob it prints)",
        "command": " ".join(["pytest", *sys.argv[1:]]),
        "settings": {**settings.as_dict(), "model": about["model"]},
        "intervention": intervention_info(settings),
        # --direction's content, also when the map's add reads it and the judged kind does not (report merge compares it)
        "direction_sha256": InterventionSpec(direction=settings.direction).with_sha256().direction_sha256,
    }


def intervention_info(settings: Settings) -> dict[str, object]:
    """The run record's intervention: kind, positions, component, direction and its sha256, and the strengths measured."""
    spec = settings.intervention_spec().with_sha256()
    kind = spec.kind_row
    return {
        **spec.describe(),
        "formula": kind.formula,
        "note_scale": kind.note_scale,
        "strengths": f"the note's factor f is strength {kind.note_scale:.4g}·f; drawn f in [0.5, 1.5], s in {list(kind.drawn)}",
        "delta_at_layer": kind.delta_at_layer,
    }


def intervention_line(info: dict[str, object]) -> str:
    words = [str(info["intervention"]), f"positions {info['positions']}", f"component {info['component']}"]
    if info.get("direction_sha256"):
        words.append(f"direction {info['direction']} sha256 {info['direction_sha256']}")
    return ", ".join(words) + f" ({info['strengths']}; only [model.{info['intervention']}] sections can fail)"


def profile_name() -> str:
    getter = getattr(hypothesis_settings, "get_current_profile_name", None)  # hypothesis >= 6.119
    return getter() if getter else str(getattr(hypothesis_settings, "_current_profile", "unknown"))


def register_hypothesis_profiles() -> None:
    """ci: derandomized, few examples; dev: random, few; thorough: many. No shrinking: each example is a forward pass."""
    common = {
        "deadline": None,
        "print_blob": True,
        "phases": [Phase.explicit, Phase.reuse, Phase.generate],
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.differing_executors],
    }
    hypothesis_settings.register_profile("ci", max_examples=6, derandomize=True, **common)
    hypothesis_settings.register_profile("dev", max_examples=3, **common)
    hypothesis_settings.register_profile("thorough", max_examples=30, **common)


def load_hypothesis_profile(config: pytest.Config) -> None:
    name = config.getoption("hypothesis_profile", None)
    shown = f"--hypothesis-profile {name!r}"
    if not name and os.environ.get("HYPOTHESIS_PROFILE"):
        name = os.environ["HYPOTHESIS_PROFILE"]
        shown = f"HYPOTHESIS_PROFILE={name!r}"
    try:
        hypothesis_settings.load_profile(name or ("ci" if os.environ.get("CI") else "dev"))
    except InvalidArgument:
        raise pytest.UsageError(
            f"{shown} is not a Hypothesis profile: choose one of {', '.join(PROFILES)} (see harness/suite/run_info.py)."
        ) from None


register_hypothesis_profiles()  # at import, so `--hypothesis-profile ci` finds it
