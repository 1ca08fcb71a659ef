"""The claims suite's pytest plugin: options, the session-shared subject and clean pass, the claim checker.

    pytest claims/                              # GPT-2 (the note's model), CUDA when present
    pytest claims/ --model minilm --layer 3     # any subject and layer; HARNESS_MODEL=minilm works too
    pytest claims/ --model minilm --model gpt2  # several models, each loaded, measured and freed in turn
    pytest claims/ --model random-gpt2 -n 2     # pytest-xdist: one GPU per worker when there are several
    pytest claims/ --layers all                 # layer map: C1–C5 at every block; only --layer's results can fail
    pytest claims/ --update-expectations        # rewrite this model's (and layer's) expectations from this run
    pytest claims/ --expectations my.toml       # judge against another expectations file
    pytest my_claims/ --model minilm            # a user's own claims, from any folder (harness.judge.claim)

Installed, the plugin is a pytest11 entry point, active in every pytest run and inert in runs that are not
claims runs: a claims run names the note's claims folder, or collects a test marked with a claim
(harness.suite.checks.claim_tests marks them). Only a claims run checks its files, loads a model,
sets the Hypothesis profile or prints a header.

The measurement options are made from `harness.settings.Settings` (same names, help and defaults
as the CLI's flags), each with an environment fallback `HARNESS_<NAME>`. Options, the prompts file
and the expectations file are checked at start-up. One model loads once per session (and per
xdist worker), only when tests are going to run (not for --help, --markers, --co, --fixtures);
when it cannot load, the session stops at once with the loader's message and exit code 4.
Several models (`--model` repeated, or HARNESS_MODEL=a,b) are one `harness.suite.runs.ModelRun` each: every
claim test is parametrized by model (its id starts with the model: `[minilm-0.5]`), the tests run
model by model, each model loads at its first test and is freed after its last; a model that cannot
load makes its own tests error with the loader's message while the others run. Under -n N the
models spread over the workers, one model per worker at a time (`pytest_xdist_make_scheduler`).
All state lives in `config.stash`. The report plugin (harness.report.collect) talks to this one
through the hooks in `harness.suite.hooks`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator

import pytest

from harness.errors import HarnessError
from harness.intervene.kinds import KINDS
from harness.judge.claim import CLAIMS, REFUSED, Claim, ClaimError, claim_named, twice_messages
from harness.settings import PYTEST, Settings, options
from harness.suite.hooks import CLAIM_PROPERTY, MODEL_PROPERTY, names_claims, runs_tests
from harness.suite.keys import (
    CLAIMS_RUN,
    EXPECTATIONS,
    INPUTS_CHECKED,
    MARKED,
    MODULES,
    RUNS,
    SETTINGS,
    SETTINGS_ERROR,
    TEXTS,
)
from harness.suite.run_info import header_lines, load_hypothesis_profile, run_info
from harness.suite.runs import ModelRun, model_in_nodeid
from harness.suite.startup import check_files, inputs, settings_from

# ---------------------------------------------------------------------------------------------
# Hooks, in lifecycle order


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "layer-scaling claims (harness)")
    for option in options():
        if PYTEST not in option.where:
            continue
        action = "store_true" if option.switch else "append" if option.several else "store"
        group.addoption(option.flag, dest=option.name, action=action, default=None, help=f"{option.help_text()} [{option.env}]")
    group.addoption(
        "--expectations",
        default=None,
        help="expected verdicts per model and layer, a TOML file (default harness/note/expectations.toml) [HARNESS_EXPECTATIONS]",
    )
    group.addoption(
        "--update-expectations",
        action="store_true",
        help="rewrite the expectations of each model at its --layer from this run's verdicts (only after a complete run)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "claim(id, applies=None): a test giving the verdict of a claim (a harness.judge.claim.Claim, or its id)"
    )
    if getattr(config.option, "help", False) or getattr(config.option, "markers", False):
        return  # describing the suite needs no settings
    import harness.note  # noqa: F401 - registers the note's claims

    try:
        runs = [ModelRun(_worker_device(config, settings), n) for n, settings in enumerate(settings_from(config))]
        config.stash[RUNS] = runs
        config.stash[SETTINGS] = runs[0].settings
    except HarnessError as exc:
        if names_claims(config):
            raise pytest.UsageError(str(exc)) from None
        config.stash[SETTINGS_ERROR] = str(exc)  # said if this turns out to be a claims run
        return
    if names_claims(config):
        _claims_run(config)


def _claims_run(config: pytest.Config) -> None:
    """What only a claims run does: the Hypothesis profile, the corpus and the expectations file, once."""
    if config.stash.get(CLAIMS_RUN, False):
        return
    if SETTINGS_ERROR in config.stash:
        raise pytest.UsageError(config.stash[SETTINGS_ERROR])
    load_hypothesis_profile(config)
    try:
        check_files(config)
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[CLAIMS_RUN] = True


def _refuse_report_over_inputs(config: pytest.Config) -> None:
    """Once, in a claims run: the report plugin refuses a report path over a file the run reads. Called after every
    plugin's pytest_configure (the report plugin's included, whatever order the entry points load in)."""
    if not config.stash.get(CLAIMS_RUN, False) or config.stash.get(INPUTS_CHECKED, False):
        return
    config.stash[INPUTS_CHECKED] = True
    if hasattr(config.hook, "pytest_claim_inputs"):  # the report plugin is there
        try:
            config.hook.pytest_claim_inputs(config=config, inputs=inputs(config))
        except HarnessError as exc:
            raise pytest.UsageError(str(exc)) from None


@pytest.hookimpl(tryfirst=True)  # before the terminal prints the header, which names the subject
def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    _refuse_report_over_inputs(config)  # before a model loads: a refused report path costs nothing
    if RUNS in config.stash and len(config.stash[RUNS]) == 1 and names_claims(config) and runs_tests(config):
        _load(config)  # one model: at once, so that a model that cannot load stops the session (exit 4)





def pytest_report_header(config: pytest.Config) -> list[str]:
    return header_lines(config)


@pytest.hookimpl(tryfirst=True)  # before @pytest.mark.parametrize: the model and layer lead every id
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    config = metafunc.config
    if "harness_model" not in metafunc.fixturenames or RUNS not in config.stash:
        return
    runs = config.stash[RUNS]
    metafunc.parametrize("harness_model", range(len(runs)), ids=[r.model for r in runs], indirect=True, scope="session")
    marker = metafunc.definition.get_closest_marker("claim")
    layers = sorted({n for r in runs for n in (r.planned_layers() or [])})
    if layers and marker is not None and marker.args and getattr(_marked_claim(marker), "layer_map", False):
        metafunc.parametrize("harness_layer", layers, ids=[f"L{n}" for n in layers], indirect=True, scope="session")
    kinds = [k for k in KINDS if any(k in r.settings.map_interventions() for r in runs)]
    if kinds and marker is not None and marker.args and getattr(_marked_claim(marker), "intervention_map", False):
        metafunc.parametrize("harness_intervention", kinds, ids=kinds, indirect=True, scope="session")


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[pytest.CollectReport]:
    """Each test module collected is recorded (a claim made there must be judged there, also in a module that
    collects no test); a module whose import made a Claim of the wrong form stops the run with that Claim's one
    line (harness.judge.claim.REFUSED) instead of a collection traceback."""
    refused = len(REFUSED)
    report = yield
    if isinstance(collector, pytest.Module):
        collector.config.stash.setdefault(MODULES, set()).add(str(collector.path))
    if report.failed and len(REFUSED) > refused:
        raise pytest.UsageError(REFUSED[refused])
    return report


def pytest_itemcollected(item: pytest.Item) -> None:
    marker = item.get_closest_marker("claim")
    if marker is not None and marker.args:
        claim = _marked_claim(marker)
        item.config.stash.setdefault(MARKED, set()).add(claim.id if claim is not None else None)


@pytest.hookimpl(trylast=True)  # after pytest's own grouping by fixture parameters
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Model by model (each loads once), layer by layer within a model (one measure cache at a time);
    a layer of `--layers all` beyond a shallower model's blocks is no test of it."""
    files = {str(getattr(item, "fspath", "")) for item in items} | config.stash.get(MODULES, set())
    marked = any(item.get_closest_marker("claim") is not None for item in items)
    defined = any(claim.defined_in in files for claim in CLAIMS.values())  # a claim made in a collected test module
    if not (marked or defined or config.stash.get(CLAIMS_RUN, False)):
        return  # not a claims run: the plugin stays out of it
    _claims_run(config)
    _refuse_report_over_inputs(config)
    _check_claims(config, items)
    runs, kept, dropped = config.stash[RUNS], [], []
    for item in items:
        model, layer, kind = _target(item)
        planned = runs[model].planned_layers() if model is not None and layer is not None else None
        off_layer = planned is not None and layer not in planned
        if model is not None and kind is not None:
            own = runs[model].settings
            off_kind = kind not in own.map_interventions()  # another model's map
            both = layer is not None and layer != own.layer and kind != own.intervention  # the maps cross at the judged layer and kind only
            off_layer = off_layer or off_kind or both
        (dropped if off_layer else kept).append(item)
    kept.sort(key=lambda item: tuple(-1 if v is None else v for v in _order(item)))
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = kept


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """Several models under -n N: each model's tests go to one worker, so a model loads on one worker only."""
    runs = config.stash.get(RUNS, [])
    if len(runs) < 2 or config.getoption("dist", "load") != "load":
        return None  # one model, or a --dist the user chose: xdist's own scheduling
    from xdist.scheduler import LoadScopeScheduling

    models = [r.model for r in runs]

    class ByModel(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return model_in_nodeid(nodeid, models) or nodeid

    return ByModel(config, log)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    """Attach the item's model info (loaded, or why not) so it reaches the report, also from xdist workers."""
    try:
        return (yield)
    finally:
        marker = item.get_closest_marker("claim")
        if marker is not None and marker.args:
            item.user_properties.append((CLAIM_PROPERTY, str(getattr(marker.args[0], "id", marker.args[0]))))
        model = _target(item)[0]
        runs = item.config.stash.get(RUNS, [])
        if model is not None and runs[model].info:
            item.user_properties.append((MODEL_PROPERTY, json.dumps(runs[model].info, ensure_ascii=False)))


@pytest.hookimpl(optionalhook=True)
def pytest_claim_report_run_info(config: pytest.Config) -> dict | None:
    return run_info(config) if SETTINGS in config.stash else None


@pytest.hookimpl(optionalhook=True)
def pytest_claim_outcomes(config: pytest.Config, outcomes: list, complete: bool, why: str) -> None:
    """--update-expectations: write what this run measured at each model's --layer, only after a complete run."""
    if not config.getoption("update_expectations") or RUNS not in config.stash:
        return
    from harness.judge.expectations import summarize, write_expectations

    path = config.stash[EXPECTATIONS]
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    say = reporter.write_line if reporter is not None else (lambda line, **_: sys.stderr.write(line + "\n"))
    if not complete:
        say(f"harness: expectations NOT updated ({path} unchanged): {why}; rerun to completion to update them", red=True)
        return
    kind = config.stash[SETTINGS].intervention
    if kind != "scale":
        say(
            f"harness: expectations NOT updated ({path} unchanged): they record the note's scaling; under --intervention {kind} "
            f"write the [model.{kind}] section by hand",
            red=True,
        )
        return
    for run in config.stash[RUNS]:
        settings = run.settings
        own = [o for o in outcomes if o.model == settings.model and o.layer in (settings.layer, None)]
        summary = summarize([o for o in own if o.intervention == settings.intervention])  # an intervention map's others: findings
        if not summary:
            continue
        try:
            write_expectations(path, settings.model, summary, layer=settings.layer)
        except (HarnessError, OSError) as exc:
            say(f"harness: expectations NOT updated ({path} unchanged): {exc}", red=True)
            return
        say(f"harness: wrote the expectations of {len(summary)} claims for {settings.model} at layer {settings.layer} to {path}")


# ---------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def harness_model(request: pytest.FixtureRequest) -> Iterator[ModelRun]:
    """The test's model (parametrized by index, see pytest_generate_tests): loaded at its first test, freed after its last."""
    if RUNS not in request.config.stash:
        pytest.fail("the claims' settings were not read: run the claims through `pytest claims/`")
    runs = request.config.stash[RUNS]
    run = runs[getattr(request, "param", 0)]
    if run.subject is None and not run.tried:
        try:
            run.load(request.config.stash[TEXTS])
        except HarnessError:
            pass  # run.error says why; every test of this model errors with it
    if run.error is not None or run.subject is None:
        pytest.fail(f"cannot run the claims on {run.model}: {run.error or 'it was freed'}", pytrace=False)
    yield run
    if len(runs) > 1:
        run.release()  # pytest tears this down before the next model's first test sets its model up


@pytest.fixture(scope="session")
def harness_layer(request: pytest.FixtureRequest) -> int | None:
    """The layer map's layer of this test (None: the model's --layer)."""
    return getattr(request, "param", None)


@pytest.fixture(scope="session")
def harness_intervention(request: pytest.FixtureRequest) -> str | None:
    """The intervention map's kind of this test (None: the model's --intervention)."""
    return getattr(request, "param", None)


@pytest.fixture(scope="session")
def settings(harness_model: ModelRun, harness_layer: int | None, harness_intervention: str | None) -> Settings:
    """The test's model's settings, at the test's layer and under the test's intervention."""
    out = harness_model.settings if harness_layer is None else harness_model.settings.replace(layer=harness_layer)
    return out if harness_intervention is None else out.at_intervention(harness_intervention)


@pytest.fixture(scope="session")
def subject(harness_model: ModelRun):
    return harness_model.subject


@pytest.fixture(scope="session")
def tokens(harness_model: ModelRun):
    """The corpus as read at start-up, tokenized by this model (harness.model.prompts.Tokenized)."""
    return harness_model.tokens


@pytest.fixture(scope="session")
def prompts(tokens) -> list[str]:
    return list(tokens.texts)


@pytest.fixture(scope="session")
def claim_run(pytestconfig: pytest.Config, harness_model: ModelRun, settings: Settings):
    """What a claim measures and judges through (harness.measure.session.Run): this model's one cache, this test's layer.

    The model's measurements, clean passes included, are made on first use and shared by every claim and layer."""
    from harness.measure.session import Measurements

    if harness_model.measurements is None:
        harness_model.measurements = Measurements(
            harness_model.subject,
            harness_model.tokens,
            harness_model.settings,
            progress=lambda label: progress_lines(pytestconfig, label),
        )
    return harness_model.measurements.at(settings)


def progress_lines(config: pytest.Config, label: str, after_s: float = 5.0) -> Callable[[int, int], None] | None:
    """A sweep's progress as lines on pytest's terminal (outside output capture), at every tenth of its chunks.

    Made just before the sweep starts; a sweep shorter than `after_s` seconds prints nothing. None without a terminal.
    """
    import time

    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return None
    start, shown = time.monotonic(), set()

    def update(done: int, total: int) -> None:
        tenth, elapsed = done * 10 // total, time.monotonic() - start
        if elapsed >= after_s and tenth not in shown:
            shown.add(tenth)
            reporter.write_line(f"harness: {label}: {done}/{total} chunks in {elapsed:.0f} s")

    return update


@pytest.fixture(scope="session")
def expectations(pytestconfig: pytest.Config, settings: Settings, harness_model: ModelRun, harness_layer: int | None):
    """Every claim's expectation for this model at this layer; a layer map's other layers are findings."""
    from harness.judge.expectations import load_expectations

    judged = None if harness_layer is None else harness_model.settings.layer
    return load_expectations(
        pytestconfig.stash[EXPECTATIONS], settings.model, settings.layer, judged=judged, intervention=settings.intervention
    )


@pytest.fixture
def claim_check(request: pytest.FixtureRequest, expectations, settings: Settings, subject):
    """The test's claim (from its `claim` marker): skipped here when not applicable, else checked by the test."""
    from harness.judge.expectations import default_expectation
    from harness.suite.checks import ClaimCheck

    marker = request.node.get_closest_marker("claim")
    claim = _marked_claim(marker) if marker is not None and marker.args else None
    if claim is None:
        pytest.fail(f"{request.node.nodeid} uses claim_check without a claim: make its tests with claim_tests(CLAIM)", pytrace=False)
    check = ClaimCheck(request.node, claim, expectations.get(claim.id) or default_expectation(claim, expectations), settings)
    check.skip_unless_applicable(subject, marker.kwargs.get("applies") or claim.applies)
    return check


# ---------------------------------------------------------------------------------------------
# Start-up


def _marked_claim(marker: pytest.Mark) -> Claim | None:
    """The claim a `claim` marker names: a Claim, or the id of one; None for an id no claim has."""
    try:
        return claim_named(marker.args[0])
    except ClaimError:
        return None


def _check_claims(config: pytest.Config, items: list[pytest.Item]) -> None:
    """One line and exit 4 for a claim that cannot be judged: no threshold, an id made twice, never tested, unknown."""
    problems = list(twice_messages())
    for item in items:
        marker = item.get_closest_marker("claim")
        if marker is None or not marker.args:
            continue
        claim = _marked_claim(marker)
        if claim is None:
            problems.append(f"{item.nodeid} is marked claim({marker.args[0]!r}), which no Claim defines: make the claim first")
            continue
        problems += [p for p in claim.problems() if p not in problems]
    files = {str(getattr(item, "fspath", "")) for item in items} | config.stash.get(MODULES, set())  # modules without a test too
    tested = config.stash.get(MARKED, set())
    for claim in CLAIMS.values():
        if claim.id not in tested and claim.defined_in in files:
            problems.append(
                f"claim {claim.id!r} is defined in {claim.defined_in} but no test judges it: add "
                f"`test_{claim.id.replace('-', '_')}, test_{claim.id.replace('-', '_')}_drawn = claim_tests(...)` there"
            )
    if problems:
        raise pytest.UsageError(problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))


def _load(config: pytest.Config) -> None:
    """Load the one model before the header prints; a model that cannot load is a usage error."""
    try:
        config.stash[RUNS][0].load(config.stash[TEXTS])  # empty or over-long prompts: said now, once
    except HarnessError as exc:
        raise pytest.UsageError(f"cannot run the claims: {exc}") from None


def _target(item: pytest.Item) -> tuple[int | None, int | None, str | None]:
    """(model index, layer map layer, intervention map kind) of a claim test, from its parameters."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    return params.get("harness_model"), params.get("harness_layer"), params.get("harness_intervention")


def _order(item: pytest.Item) -> tuple[int | None, int | None, int | None]:
    """Model by model, then layer, then kind (KINDS order): one model's cache at a time."""
    model, layer, kind = _target(item)
    return model, layer, None if kind is None else list(KINDS).index(kind)


def _worker_device(config: pytest.Config, settings: Settings) -> Settings:
    """Under pytest-xdist with several GPUs, worker gwN takes cuda:(N mod count)."""
    worker = getattr(config, "workerinput", {}).get("workerid")
    if not worker or settings.device not in ("auto", "cuda"):
        return settings
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() > 1:
        return settings.replace(device=f"cuda:{int(worker.removeprefix('gw')) % torch.cuda.device_count()}")
    return settings


