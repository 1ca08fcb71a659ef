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
import os
import platform
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import InvalidArgument

from harness.errors import HarnessError
from harness.intervene.kinds import KINDS
from harness.judge.claim import CLAIMS, Claim, ClaimError, claim_named, twice_messages
from harness.settings import ENV_PREFIX, PYTEST, Settings, options, where_given
from harness.suite.hooks import CLAIM_PROPERTY, MODEL_PROPERTY, names_claims, runs_tests
from harness.suite.runs import ModelRun, model_in_nodeid

SETTINGS = pytest.StashKey[Settings]()  # the first model's settings (the only one's, in a one-model run)
RUNS = pytest.StashKey[list]()  # harness.suite.runs.ModelRun per model, in command-line order
EXPECTATIONS = pytest.StashKey[Path]()  # the expectations file, checked at start-up
TEXTS = pytest.StashKey[list]()  # the corpus as read at start-up (harness.model.prompts.read_prompts)
CORPUS_WARNING = pytest.StashKey[str | None]()  # invisible-only lines skipped in it (PromptFile.warning), or None
PROFILES = ("ci", "dev", "thorough")  # Hypothesis profiles registered below
CLAIMS_RUN = pytest.StashKey[bool]()  # set up as a claims run (files checked, Hypothesis profile loaded)
INPUTS_CHECKED = pytest.StashKey[bool]()  # the report path checked against the run's inputs
MARKED = pytest.StashKey[set]()  # ids of the claims the collected tests judge, before -k or -m deselect any
SETTINGS_ERROR = pytest.StashKey[str]()  # why the options could not be read, said only in a claims run


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
        runs = [ModelRun(_worker_device(config, settings), n) for n, settings in enumerate(_settings_from(config))]
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
    _load_hypothesis_profile(config)
    try:
        _check_files(config)
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
            config.hook.pytest_claim_inputs(config=config, inputs=_inputs(config))
        except HarnessError as exc:
            raise pytest.UsageError(str(exc)) from None


@pytest.hookimpl(tryfirst=True)  # before the terminal prints the header, which names the subject
def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    _refuse_report_over_inputs(config)  # before a model loads: a refused report path costs nothing
    if RUNS in config.stash and len(config.stash[RUNS]) == 1 and names_claims(config) and runs_tests(config):
        _load(config)  # one model: at once, so that a model that cannot load stops the session (exit 4)


def pytest_report_header(config: pytest.Config) -> list[str]:
    runs = config.stash.get(RUNS, [])
    if not runs or not (runs[0].subject is not None or (len(runs) > 1 and names_claims(config) and runs_tests(config))):
        return []
    info = _run_info(config)
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
        lines.append(f"harness: intervention {_intervention_line(info['intervention'])}")
    if runs[0].settings.layers is not None:
        lines.append(f"harness: layer map {runs[0].settings.layers} (C1–C5 at each; layers other than {info['layer']} are findings)")
    if runs[0].settings.interventions is not None:
        kinds, own = runs[0].settings.map_interventions(), runs[0].settings.intervention
        lines.append(
            f"harness: intervention map {','.join(kinds)} (C1–C6 under each at block {info['layer']}, one clean pass; "
            f"kinds other than {own} are findings unless [model.KIND] names them)"
        )
    return lines


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


def pytest_itemcollected(item: pytest.Item) -> None:
    marker = item.get_closest_marker("claim")
    if marker is not None and marker.args:
        claim = _marked_claim(marker)
        item.config.stash.setdefault(MARKED, set()).add(claim.id if claim is not None else None)


@pytest.hookimpl(trylast=True)  # after pytest's own grouping by fixture parameters
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Model by model (each loads once), layer by layer within a model (one measure cache at a time);
    a layer of `--layers all` beyond a shallower model's blocks is no test of it."""
    files = {str(getattr(item, "fspath", "")) for item in items}
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
    return _run_info(config) if SETTINGS in config.stash else None


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


def _settings_from(config: pytest.Config) -> list[Settings]:
    """One Settings per model, from the options, else the HARNESS_<NAME> variables; errors name which one."""
    given: dict[str, tuple[object, str]] = {}
    several: list[tuple[str, tuple[object, str]]] = []  # (field, (texts, where)) of options that make one Settings per value
    for option in options():
        if PYTEST in option.where:
            found = where_given(option, config.getoption(option.name))
            if found is None:
                continue
            if option.several:
                texts, where = found
                texts = texts if isinstance(texts, list) else _entries(str(texts), where)
                several.append((option.name, (texts, where)))
            else:
                given[option.name] = found
    out = [Settings.from_text(given)]  # type: ignore[arg-type]
    for name, (texts, where) in several:
        out = [Settings.from_text({**given, name: (text, where)}) for text in texts]  # type: ignore[dict-item]
        _check_distinct([getattr(s, name) for s in out], where)
    return out


def _check_distinct(models: list[str], where: str) -> None:
    """Refuse a model named twice, also when spelled two ways ('DIR' and 'DIR/', 'gpt2' and 'GPT2')."""
    from harness.model.loading import model_identity

    seen: dict[str, str] = {}
    for model in models:
        key = model_identity(model)
        if key not in seen:
            seen[key] = model
        elif seen[key] == model:
            raise HarnessError(f"{where} names {model!r} twice: give each model once.")
        else:
            raise HarnessError(f"{where} names one model twice, as {seen[key]!r} and {model!r} (both {key}): give each model once.")


def _entries(text: str, where: str) -> list[str]:
    """A comma-separated variable's entries (HARNESS_MODEL=a,b); an empty one is refused, naming the whole value."""
    entries = [t.strip() for t in text.split(",")]
    empty = [n for n, entry in enumerate(entries, 1) if not entry]
    if empty and len(entries) > 1:  # a wholly empty value is the setting's own error ("is set but empty")
        raise HarnessError(
            f"{where}={text!r} has an empty entry (entry {empty[0]} of {len(entries)}): give model names separated by "
            f"single commas, without a trailing comma, e.g. {where}=minilm,random-gpt2."
        )
    return entries


def _check_files(config: pytest.Config) -> None:
    """The corpus and the expectations file, read and checked once, before any test."""
    from harness import note
    from harness.judge.expectations import check_path, read_table
    from harness.model.prompts import read_prompt_file

    settings = config.stash[SETTINGS]
    path = note.EXPECTATIONS
    label = f"expectations file {str(path)!r}"
    variable = ENV_PREFIX + "EXPECTATIONS"
    flag = config.getoption("expectations")
    given = ("--expectations", flag) if flag is not None else (variable, os.environ[variable]) if variable in os.environ else None
    if given is not None:
        where, text = given
        if not text.strip():  # Path("") would be the working directory
            said = f"{where} {text!r} is empty: give" if flag is not None else f"{where} is set but empty: set it to"
            fix = "leave it out" if flag is not None else f"unset it (unset {where})"
            raise HarnessError(f"{said} the path of an expectations TOML file, or {fix} to use {path}.")
        path = Path(text)
        label = f"{where} {text!r}" if flag is not None else f"{where}={text!r}"
    check_path(path, label, creating=bool(config.getoption("update_expectations")))
    read_table(path)  # a malformed file: say so now, once
    config.stash[EXPECTATIONS] = path
    corpus = settings.prompts or note.PROMPTS
    try:
        read = read_prompt_file(corpus)
    except OSError as exc:
        raise HarnessError(f"prompts file {str(corpus)!r} cannot be read ({exc.strerror or exc}): give a readable text file.") from exc
    config.stash[TEXTS], config.stash[CORPUS_WARNING] = read.texts, read.warning


def _inputs(config: pytest.Config) -> list[tuple[str, Path]]:
    """Every file the run reads, as (what, path): the expectations file, the corpus, each model directory's files."""
    from harness import note

    settings = config.stash[SETTINGS]
    corpus = settings.prompts or note.PROMPTS
    found = [(f"the expectations file {str(config.stash[EXPECTATIONS])!r}", config.stash[EXPECTATIONS])]
    found.append((f"the prompts file {str(corpus)!r}", Path(corpus)))
    for run in config.stash[RUNS]:
        folder = Path(run.model).expanduser()
        if folder.is_dir():  # a checkpoint: config.json, the weights, the tokenizer's files
            found += [(f"{p.name!r} of the model {run.model!r}", p) for p in sorted(folder.iterdir()) if p.is_file()]
    return found


def _default_prompts() -> Path:
    from harness.note import PROMPTS

    return PROMPTS


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
    files = {str(getattr(item, "fspath", "")) for item in items}
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
            f"{shown} is not a Hypothesis profile: choose one of {', '.join(PROFILES)} (see harness/suite/plugin.py)."
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
        "prompts": str(settings.prompts or _default_prompts()),
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
        "hypothesis_seed": "derandomized: one seed per claim, from its id (harness.suite.checks.claim_seed)"
        if profile.derandomize
        else config.getoption("hypothesis_seed", None) or "random (repeat a failure with the @reproduce_failure blob it prints)",
        "command": " ".join(["pytest", *sys.argv[1:]]),
        "settings": {**settings.as_dict(), "model": about["model"]},
        "intervention": _intervention_info(settings),
    }


def _intervention_info(settings: Settings) -> dict[str, object]:
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


def _intervention_line(info: dict[str, object]) -> str:
    words = [str(info["intervention"]), f"positions {info['positions']}", f"component {info['component']}"]
    if info.get("direction_sha256"):
        words.append(f"direction {info['direction']} sha256 {info['direction_sha256']}")
    return ", ".join(words) + f" ({info['strengths']}; only [model.{info['intervention']}] sections can fail)"


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
