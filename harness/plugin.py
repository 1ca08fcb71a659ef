"""The claims suite's pytest plugin: options, the session-shared subject and clean pass, the claim checker.

    pytest claims/                              # GPT-2 (the note's model), CUDA when present
    pytest claims/ --model minilm --layer 3     # any subject and layer; HARNESS_MODEL=minilm works too
    pytest claims/ --model random-gpt2 -n 2     # pytest-xdist: one GPU per worker when there are several
    pytest claims/ --update-expectations        # rewrite this model's (and layer's) expectations from this run
    pytest claims/ --expectations my.toml       # judge against another expectations file

The measurement options are made from `harness.settings.Settings` (same names, help and defaults
as the CLI's flags), each with an environment fallback `HARNESS_<NAME>`. Options, the prompts file
and the expectations file are checked at start-up. The subject loads once per session (and per
xdist worker), only when tests are going to run (not for --help, --markers, --co, --fixtures);
when it cannot load, the session stops at once with the loader's message and exit code 4.
All state lives in `config.stash`. The report plugin (harness.report.collect) talks to this one
through the hooks in `harness.suite`.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import InvalidArgument

from harness.errors import HarnessError
from harness.settings import ENV_PREFIX, PYTEST, Settings, load_subject_for, options, where_given
from harness.suite import claims_dir, names_claims, runs_tests

SETTINGS = pytest.StashKey[Settings]()
EXPECTATIONS = pytest.StashKey[Path]()  # the expectations file, checked at start-up
TEXTS = pytest.StashKey[list]()  # the corpus as read at start-up (harness.prompts.read_prompts)
SUBJECT = pytest.StashKey[object]()  # harness.subjects.Subject, loaded at session start
TOKENS = pytest.StashKey[object]()  # the corpus tokenized once (harness.prompts.Tokenized)
LOAD_ERROR = pytest.StashKey[str]()  # why the subject could not load, for the report's header
PROFILES = ("ci", "dev", "thorough")  # Hypothesis profiles registered below


# ---------------------------------------------------------------------------------------------
# Hooks, in lifecycle order


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "layer-scaling claims (harness)")
    for option in options():
        if PYTEST not in option.where:
            continue
        action = "store_true" if option.switch else "store"
        group.addoption(option.flag, dest=option.name, action=action, default=None, help=f"{option.help_text()} [{option.env}]")
    group.addoption(
        "--expectations",
        default=None,
        help="expected verdicts per model and layer, a TOML file (default claims/expectations.toml) [HARNESS_EXPECTATIONS]",
    )
    group.addoption(
        "--update-expectations",
        action="store_true",
        help="rewrite the expectations of this model and layer from this run's verdicts (only after a complete run)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "claim(id, applies=None): a test giving the verdict of claim `id` (C0 … C5) of the note")
    if getattr(config.option, "help", False) or getattr(config.option, "markers", False):
        return  # describing the suite needs no settings
    _load_hypothesis_profile(config)
    try:
        config.stash[SETTINGS] = _worker_device(config, _settings_from(config))
        if names_claims(config):
            _check_files(config)
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.hookimpl(tryfirst=True)  # before the terminal prints the header, which names the subject
def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if SETTINGS in config.stash and names_claims(config) and runs_tests(config):
        _load(config)


def pytest_report_header(config: pytest.Config) -> list[str]:
    if SUBJECT not in config.stash:
        return []
    info = _run_info(config)
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    lines = [
        f"harness: model {info['model']} ({info['architecture']}, {info['revision']}), layer {info['layer']}, "
        f"device {info['device']}, dtype {info['dtype']}, seed {info['settings']['seed']}",
        f"harness: prompts {info['prompts']} ({info['n_prompts']}), hypothesis profile {info['hypothesis_profile']}"
        f" (seed {info['hypothesis_seed']})",
        f"harness: {versions}",
    ]
    if info.get("first_token"):
        lines.append(f"harness: first token: {info['first_token']}")
    if info.get("unknown_tokens_warning"):
        lines.append(f"harness: WARNING {info['unknown_tokens_warning']}")
    return lines


@pytest.hookimpl(optionalhook=True)
def pytest_claim_report_run_info(config: pytest.Config) -> dict | None:
    return _run_info(config) if SETTINGS in config.stash else None


@pytest.hookimpl(optionalhook=True)
def pytest_claim_outcomes(config: pytest.Config, outcomes: list, complete: bool, why: str) -> None:
    """--update-expectations: write what this run measured, only after a complete run."""
    if not config.getoption("update_expectations") or SETTINGS not in config.stash:
        return
    from harness.expectations import summarize, write_expectations

    path, settings = config.stash[EXPECTATIONS], config.stash[SETTINGS]
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    say = reporter.write_line if reporter is not None else (lambda line, **_: sys.stderr.write(line + "\n"))
    if not complete:
        say(f"harness: expectations NOT updated ({path} unchanged): {why}; rerun to completion to update them", red=True)
        return
    summary = summarize(outcomes)
    try:
        write_expectations(path, settings.model, summary, layer=settings.layer)
    except (HarnessError, OSError) as exc:
        say(f"harness: expectations NOT updated ({path} unchanged): {exc}", red=True)
        return
    say(f"harness: wrote the expectations of {len(summary)} claims for {settings.model} at layer {settings.layer} to {path}")


# ---------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def settings(pytestconfig: pytest.Config) -> Settings:
    return pytestconfig.stash[SETTINGS]


@pytest.fixture(scope="session")
def subject(pytestconfig: pytest.Config):
    if SUBJECT not in pytestconfig.stash:
        pytest.fail("the subject was not loaded: run the claims through `pytest claims/`")
    return pytestconfig.stash[SUBJECT]


@pytest.fixture(scope="session")
def tokens(pytestconfig: pytest.Config, subject):
    """The corpus as read and tokenized at start-up (harness.prompts.Tokenized)."""
    return pytestconfig.stash[TOKENS]


@pytest.fixture(scope="session")
def prompts(tokens) -> list[str]:
    return list(tokens.texts)


@pytest.fixture(scope="session")
def clean_pass(subject, tokens, settings: Settings):
    """The clean forward over the corpus, run once per session and shared by every claim."""
    from harness import CleanPass

    return CleanPass(subject, tokens, settings.memory_budget_mb)


@pytest.fixture(scope="session")
def measure(subject, clean_pass, settings: Settings) -> Callable:
    """measure(factor) -> Profile at the settings' layer, per prompt, cached by factor for the session."""
    from harness import profile

    cache: dict[float, object] = {}

    def run(factor: float):
        if factor not in cache:
            cache[factor] = profile(
                subject,
                None,
                settings.layer,
                [factor],
                per_prompt=True,
                clean=clean_pass,
                memory_budget_mb=settings.memory_budget_mb,
                factor_batch=settings.factor_batch,
            )
        return cache[factor]

    return run


@pytest.fixture(scope="session")
def expectations(pytestconfig: pytest.Config, settings: Settings):
    from harness.expectations import load_expectations

    return load_expectations(pytestconfig.stash[EXPECTATIONS], settings.model, settings.layer)


@pytest.fixture
def claim_check(request: pytest.FixtureRequest, expectations, settings: Settings, subject):
    """The test's claim (from its `claim` marker): skipped here when not applicable, else checked by the test."""
    from harness.checks import ClaimCheck

    marker = request.node.get_closest_marker("claim")
    if marker is None or not marker.args or marker.args[0] not in expectations:
        pytest.fail(f"{request.node.nodeid} uses claim_check without a claim: mark it @pytest.mark.claim('C3')", pytrace=False)
    check = ClaimCheck(request.node, marker.args[0], expectations[marker.args[0]], settings)
    check.skip_unless_applicable(subject, marker.kwargs.get("applies"))
    return check


# ---------------------------------------------------------------------------------------------
# Start-up


def _settings_from(config: pytest.Config) -> Settings:
    """Settings from the options, else the HARNESS_<NAME> variables; errors name which one."""
    given = {}
    for option in options():
        if PYTEST in option.where:
            found = where_given(option, config.getoption(option.name))
            if found is not None:
                given[option.name] = found
    return Settings.from_text(given)  # type: ignore[arg-type]


def _check_files(config: pytest.Config) -> None:
    """The corpus and the expectations file, read and checked once, before any test."""
    from harness.expectations import check_path, read_table
    from harness.prompts import read_prompts

    settings = config.stash[SETTINGS]
    path = claims_dir(config) / "expectations.toml"
    label = f"expectations file {str(path)!r}"
    if config.getoption("expectations") is not None:
        path = Path(config.getoption("expectations"))
        label = f"--expectations {str(path)!r}"
    elif ENV_PREFIX + "EXPECTATIONS" in os.environ:
        path = Path(os.environ[ENV_PREFIX + "EXPECTATIONS"])
        label = f"{ENV_PREFIX}EXPECTATIONS={str(path)!r}"
    check_path(path, label, creating=bool(config.getoption("update_expectations")))
    read_table(path)  # a malformed file: say so now, once
    config.stash[EXPECTATIONS] = path
    corpus = settings.prompts or claims_dir(config) / "prompts.txt"
    try:
        config.stash[TEXTS] = read_prompts(corpus)
    except OSError as exc:
        raise HarnessError(f"prompts file {str(corpus)!r} cannot be read ({exc.strerror or exc}): give a readable text file.") from exc


def _load(config: pytest.Config) -> None:
    """Load the subject once, before the header prints; a subject that cannot load is a usage error."""
    from harness.prompts import tokenize

    settings = config.stash[SETTINGS]
    try:
        subject = load_subject_for(settings)
        subject.check_layer(settings.layer)
        # empty or over-long prompts: say so now, once; the fixtures reuse these tokens
        config.stash[TOKENS] = tokenize(subject, config.stash[TEXTS])
    except HarnessError as exc:
        config.stash[LOAD_ERROR] = str(exc)
        raise pytest.UsageError(f"cannot run the claims: {exc}") from None
    config.stash[SUBJECT] = subject


def _load_hypothesis_profile(config: pytest.Config) -> None:
    name = config.getoption("hypothesis_profile", None)
    shown = f"--hypothesis-profile {name!r}"
    if not name and os.environ.get("HYPOTHESIS_PROFILE"):
        name = os.environ["HYPOTHESIS_PROFILE"]
        shown = f"HYPOTHESIS_PROFILE={name!r}"
    try:
        hypothesis_settings.load_profile(name or ("ci" if os.environ.get("CI") else "dev"))
    except InvalidArgument:
        raise pytest.UsageError(
            f"{shown} is not a Hypothesis profile: choose one of {', '.join(PROFILES)} (see harness/plugin.py)."
        ) from None


def _worker_device(config: pytest.Config, settings: Settings) -> Settings:
    """Under pytest-xdist with several GPUs, worker gwN takes cuda:(N mod count)."""
    worker = getattr(config, "workerinput", {}).get("workerid")
    if not worker or settings.device not in ("auto", "cuda"):
        return settings
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() > 1:
        return settings.replace(device=f"cuda:{int(worker.removeprefix('gw')) % torch.cuda.device_count()}")
    return settings


# ---------------------------------------------------------------------------------------------
# What makes a run repeatable


def _run_info(config: pytest.Config) -> dict[str, object]:
    """The run's identity for the header and the report (through pytest_claim_report_run_info)."""
    import hypothesis
    import numpy
    import torch
    import transformers

    from harness.prompts import unknown_tokens_warning

    settings = config.stash[SETTINGS]
    if SUBJECT in config.stash:
        about = config.stash[SUBJECT].describe()
    else:  # the subject did not load: say what was asked for and why it failed
        about = {
            "model": settings.model,
            "device": settings.device,
            "dtype": settings.dtype,
            "revision": "not loaded",
            "error": config.stash.get(LOAD_ERROR, "the subject was not loaded"),
        }
    tokens = config.stash.get(TOKENS, None)
    texts = list(tokens.texts) if tokens is not None else config.stash.get(TEXTS, None)
    profile = hypothesis_settings()
    return {
        **about,
        "layer": settings.layer,
        "prompts": str(settings.prompts or claims_dir(config) / "prompts.txt"),
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
        "hypothesis_profile": _profile_name(),
        "hypothesis_seed": "derandomized"
        if profile.derandomize
        else config.getoption("hypothesis_seed", None) or "random (repeat a failure with the @reproduce_failure blob it prints)",
        "command": " ".join(["pytest", *sys.argv[1:]]),
        "settings": settings.as_dict(),
    }


def _profile_name() -> str:
    getter = getattr(hypothesis_settings, "get_current_profile_name", None)  # hypothesis >= 6.119
    return getter() if getter else str(getattr(hypothesis_settings, "_current_profile", "unknown"))


def _register_hypothesis_profiles() -> None:
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


_register_hypothesis_profiles()  # at import, so `--hypothesis-profile ci` finds it
