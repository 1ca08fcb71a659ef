"""The pytest plugin: options, the session-shared subject and clean pass, and the claim checker.

    pytest claims/                              # GPT-2 (the note's model), CUDA when present
    pytest claims/ --model minilm               # any subject; HARNESS_MODEL=minilm works too
    pytest claims/ --model random-gpt2 -n 2     # pytest-xdist: one GPU per worker when there are several
    pytest claims/ --update-expectations        # rewrite claims/expectations.toml from this run
    pytest claims/ --expectations my.toml       # judge against another expectations file

Options map one to one onto `harness.settings.Settings`; each falls back to an environment
variable `HARNESS_<NAME>`. The subject loads once per session (and per xdist worker); when it
cannot load, the session stops at once with the loader's message and exit code 4 (usage error).
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings

from harness.errors import HarnessError, InputError
from harness.settings import ENV_PREFIX, NOTE_LAYER, Settings

CLAIMS_DIR = Path(__file__).resolve().parent.parent / "claims"
DEFAULT_PROMPTS = CLAIMS_DIR / "prompts.txt"
EXPECTATIONS = CLAIMS_DIR / "expectations.toml"

_SUBJECT = pytest.StashKey[object]()
_SETTINGS = pytest.StashKey[Settings]()
_TOKENS = pytest.StashKey[object]()  # the corpus, read and tokenized once at start-up (harness.prompts.Tokenized)
_LOAD_ERROR = pytest.StashKey[str]()  # why the subject could not load, for the report's header


# ---------------------------------------------------------------------------------------------
# Hooks, in lifecycle order


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "layer-scaling claims (harness)")
    group.addoption(
        "--model", default=None, help="subject: gpt2 (default), minilm, random-gpt2, a Hub id or a local directory [HARNESS_MODEL]"
    )
    group.addoption("--device", default=None, help="auto (default: CUDA when present), cpu, cuda or cuda:N [HARNESS_DEVICE]")
    group.addoption("--dtype", default=None, help="float32 (default), bfloat16 or float16 [HARNESS_DTYPE]")
    group.addoption("--layer", default=None, help=f"block whose output is scaled (default {NOTE_LAYER}, the note's) [HARNESS_LAYER]")
    group.addoption("--prompts", default=None, help=f"prompt file, one per line (default {DEFAULT_PROMPTS.name}) [HARNESS_PROMPTS]")
    group.addoption(
        "--expectations", default=None, help=f"expected verdicts per model (default claims/{EXPECTATIONS.name}) [HARNESS_EXPECTATIONS]"
    )
    group.addoption(
        "--update-expectations", action="store_true", help="rewrite claims/expectations.toml for this model from this run's verdicts"
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "claim(id): a test giving the verdict of one of the note's claims")
    config.stash[_SETTINGS] = _settings_from(config)
    name = config.getoption("hypothesis_profile", None) or os.environ.get("HYPOTHESIS_PROFILE")
    hypothesis_settings.load_profile(name or ("ci" if os.environ.get("CI") else "dev"))
    if _runs_claims(config):
        config.stash[_SUBJECT] = _load(config)


def _load(config: pytest.Config):
    """Load the subject once, before the header prints; a subject that cannot load is a usage error."""
    from harness.expectations import load_expectations
    from harness.prompts import read_prompts, tokenize
    from harness.subjects import load_subject

    settings = config.stash[_SETTINGS]
    try:
        subject = load_subject(settings.model, device=settings.device, dtype=settings.dtype, seed=settings.seed)
        subject.check_layer(settings.layer)
        # empty or over-long prompts: say so now, once; the fixtures reuse these tokens
        config.stash[_TOKENS] = tokenize(subject, read_prompts(settings.prompts or DEFAULT_PROMPTS))
        expectations = _expectations_path(config)
        if not expectations.is_file() and not config.getoption("update_expectations"):
            raise InputError(
                f"expectations file {str(expectations)!r} does not exist: "
                "give an existing TOML file, or add --update-expectations to create it."
            )
        load_expectations(expectations, settings.model)  # a malformed file: say so now, once
    except HarnessError as exc:
        config.stash[_LOAD_ERROR] = str(exc)
        raise pytest.UsageError(f"cannot run the claims: {exc}") from None
    return subject


def pytest_report_header(config: pytest.Config) -> list[str]:
    if _SUBJECT not in config.stash:
        return []
    info = run_info(config)
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    return [
        f"harness: model {info['model']} ({info['architecture']}, {info['revision']}), layer {info['layer']}, "
        f"device {info['device']}, dtype {info['dtype']}",
        f"harness: prompts {info['prompts']} ({info['n_prompts']}), hypothesis profile {info['hypothesis_profile']}"
        f" (seed {info['hypothesis_seed']})",
        f"harness: {versions}",
    ]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collect measured verdicts (also from xdist workers) for --update-expectations."""
    for name, value in getattr(report, "user_properties", []):
        if name == "claim_outcome" and report.when in ("call", "setup"):
            outcome = json.loads(value)
            _measured.setdefault(outcome["claim"], []).append(outcome)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if not config.getoption("update_expectations") or hasattr(config, "workerinput") or not _measured:
        return
    from harness.expectations import summarize, write_expectations

    path = _expectations_path(config)
    write_expectations(path, config.stash[_SETTINGS].model, summarize(_measured))
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"harness: wrote the expectations of {len(_measured)} claims to {path}")


_measured: dict[str, list[dict]] = {}  # claim id -> outcomes seen in this session (controller side)


# ---------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def settings(pytestconfig: pytest.Config) -> Settings:
    return pytestconfig.stash[_SETTINGS]


@pytest.fixture(scope="session")
def subject(pytestconfig: pytest.Config):
    if _SUBJECT not in pytestconfig.stash:
        pytest.fail("the subject was not loaded: run the claims through `pytest claims/`")
    return pytestconfig.stash[_SUBJECT]


@pytest.fixture(scope="session")
def tokens(pytestconfig: pytest.Config, subject):
    """The corpus as read and tokenized at start-up (harness.prompts.Tokenized)."""
    return pytestconfig.stash[_TOKENS]


@pytest.fixture(scope="session")
def prompts(tokens) -> list[str]:
    return list(tokens.texts)


@pytest.fixture(scope="session")
def clean_pass(subject, tokens, settings: Settings):
    """The clean forward over the corpus, run once per session and shared by every claim."""
    from harness.profile import CleanPass

    return CleanPass(subject, tokens, settings.memory_budget_mb)


@pytest.fixture(scope="session")
def measure(subject, clean_pass, settings: Settings) -> Callable:
    """measure(factor) -> Profile at the settings' layer, per prompt, cached by factor for the session."""
    from harness.profile import profile

    cache: dict[float, object] = {}

    def run(factor: float):
        if factor not in cache:
            cache[factor] = profile(
                subject, None, settings.layer, [factor], per_prompt=True, clean=clean_pass, memory_budget_mb=settings.memory_budget_mb
            )
        return cache[factor]

    return run


@pytest.fixture(scope="session")
def expectations(pytestconfig: pytest.Config, settings: Settings):
    from harness.expectations import load_expectations

    return load_expectations(_expectations_path(pytestconfig), settings.model)


@pytest.fixture
def claim_check(request: pytest.FixtureRequest, expectations, settings: Settings):
    """Records a claim's outcome on the test item and asserts it against the model's expectation."""
    from harness.checks import ClaimCheck

    return ClaimCheck(request.node, expectations, settings)


# ---------------------------------------------------------------------------------------------
# What makes a run repeatable


def run_info(config: pytest.Config) -> dict[str, object]:
    """The run's identity for the header and the report."""
    import hypothesis
    import numpy
    import torch
    import transformers

    settings = config.stash[_SETTINGS]
    if _SUBJECT in config.stash:
        about = config.stash[_SUBJECT].describe()
    else:  # the subject did not load: say what was asked for and why it failed
        about = {
            "model": settings.model,
            "device": settings.device,
            "dtype": settings.dtype,
            "revision": "not loaded",
            "error": config.stash.get(_LOAD_ERROR, "the subject was not loaded"),
        }
    prompts_path = settings.prompts or DEFAULT_PROMPTS
    n_prompts: int | str = len(config.stash[_TOKENS].ids) if _TOKENS in config.stash else "not read"
    profile = hypothesis_settings()
    return {
        **about,
        "layer": settings.layer,
        "prompts": str(prompts_path),
        "n_prompts": n_prompts,
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


# ---------------------------------------------------------------------------------------------
# Helpers


def _settings_from(config: pytest.Config) -> Settings:
    def option(name: str) -> str | None:
        value = config.getoption(name)
        return value if value is not None else os.environ.get(ENV_PREFIX + name.upper())

    changes: dict[str, object] = {}
    for name in ("model", "device", "dtype"):
        if option(name) is not None:
            changes[name] = option(name)
    if option("layer") is not None:
        try:
            changes["layer"] = int(option("layer"))
        except ValueError as exc:
            raise pytest.UsageError(f"--layer {option('layer')!r} is not an integer: give a block index such as 2.") from exc
    if option("prompts") is not None:
        path = Path(option("prompts"))
        if not path.is_file():
            raise pytest.UsageError(f"--prompts {str(path)!r} is not a file: give a text file with one prompt per line.")
        changes["prompts"] = path
    try:
        settings = Settings(**changes).validated()
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from exc
    return _worker_device(config, settings)


def _expectations_path(config: pytest.Config) -> Path:
    value = config.getoption("expectations") or os.environ.get(ENV_PREFIX + "EXPECTATIONS")
    return Path(value) if value else EXPECTATIONS


def _worker_device(config: pytest.Config, settings: Settings) -> Settings:
    """Under pytest-xdist with several GPUs, worker gwN takes cuda:(N mod count)."""
    worker = getattr(config, "workerinput", {}).get("workerid")
    if not worker or settings.device not in ("auto", "cuda"):
        return settings
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() > 1:
        return settings.replace(device=f"cuda:{int(worker.removeprefix('gw')) % torch.cuda.device_count()}")
    return settings


def _runs_claims(config: pytest.Config) -> bool:
    """True when the session collects anything under claims/ (or runs with no paths at all)."""
    paths = [a.split("::")[0] for a in config.args if not a.startswith("-")]
    if not paths:
        return True
    for raw in paths:
        path = Path(raw).resolve()
        if path == CLAIMS_DIR or CLAIMS_DIR in path.parents or path in CLAIMS_DIR.parents:
            return True
    return False


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
