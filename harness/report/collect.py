"""The report's pytest plugin: gather every claim test's outcome, hand them on, write the report at the end.

    pytest claims/                          # reports/claims.html and reports/claims.json
    pytest claims/ --report out/run.html    # out/run.html and out/run.json
    pytest claims/ --no-report              # outcomes still gathered (for --update-expectations)
    pytest claims/ -n 2                     # one report, written by the xdist controller
    pytest my_claims/                       # a user's claims: reports/claims.html under the folder pytest starts in

A pytest11 entry point (and the root conftest.py's `pytest_plugins`, which then finds it registered).
A claim test is one marked with a claim (harness.suite.checks.claim_tests), one that carries a claim
outcome, or, in claims/, a hand-made `test_C<n>_...`. The report path is checked at start-up when the
command names claims/ or --report, else once claim tests are collected (a .html name in a folder
that can be written); a run with no claim test writes nothing. A report
is written when a claim test ran (also when the run is interrupted or tests error: claims with no
outcome show "not run") or a claims module failed to collect. A run that measured nothing (`--co`,
`-k nomatch`, a node id that does not exist) keeps the previous report; a run stopped at start-up
(the model cannot load) writes one saying so only where there was none. A report path whose page
or twin is a file the run reads (`pytest_claim_inputs`: expectations, prompts, a model directory's
files) is refused at start-up. A Ctrl-C while the report is written is noted and the report finished
(a second one stops it and keeps the earlier pair); either way the run then exits 130.

Each claim test attaches `("claim_outcome", <JSON>)` (harness.judge.outcome.ClaimOutcome) to
`item.user_properties`; pytest copies it into every TestReport and xdist ships it to the
controller, where it is read once, here. On the side where the test runs,
`pytest_runtest_makereport` checks that every user property can travel as JSON; one that cannot
fails that test with a message saying which property and why (never a crash, never a pass).

Hooks (harness.suite.hooks.SuiteHooks): run information for the header comes from
`pytest_claim_report_run_info(config)`; at the end of the session every outcome goes to
`pytest_claim_outcomes(config, outcomes, complete, why)` (harness.suite.plugin's --update-expectations).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.errors import INTERRUPTED_EXIT, InputError
from harness.judge.outcome import NOT_RUN, PROPERTY, ClaimOutcome, OutcomeError
from harness.report.outcomes import ItemResult, build_document, check_travels, claim_of
from harness.report.write import check_not_inputs, check_report_path, json_path_for, write_document
from harness.suite.hooks import CLAIM_PROPERTY, MODEL_PROPERTY, SuiteHooks, in_claims, names_claims

DEFAULT_REPORT = "reports/claims.html"
_PLUGIN_NAME = "harness-claim-report"
STOPPED = "claim report: could not travel: "  # replaces a user property that is not JSON-ready


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(SuiteHooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("claim report")
    group.addoption(
        "--report",
        metavar="PATH",
        default=None,
        help=f"write the claim report's HTML to PATH, a name ending in .html (relative to the rootdir), and its JSON twin "
        f"beside it, same name ending in .json (default: {DEFAULT_REPORT}).",
    )
    group.addoption("--no-report", action="store_true", default=False, help="write no claim report (neither HTML nor JSON).")


@pytest.hookimpl(tryfirst=True)  # before the suite's plugin, which may stop the run when the model cannot load
def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return  # xdist workers never gather: their reports reach the controller, which does
    path, later = None, None
    given = config.getoption("report")
    if not config.getoption("no_report") and (given is not None or names_claims(config)):
        path = Path(given) if given is not None else config.invocation_params.dir / DEFAULT_REPORT
        path = path if path.is_absolute() else config.rootpath / path
        try:
            check_report_path(path, f"--report {given!r}" if given is not None else f"report path {str(path)!r}")
        except InputError as exc:
            raise pytest.UsageError(str(exc)) from None
    elif not config.getoption("no_report"):
        later = config.invocation_params.dir / DEFAULT_REPORT  # checked once claim tests are collected
    config.pluginmanager.register(ClaimReport(config, path, later), _PLUGIN_NAME)


def pytest_unconfigure(config: pytest.Config) -> None:
    plugin = config.pluginmanager.get_plugin(_PLUGIN_NAME)
    if plugin is None:
        return
    if not plugin.finished and plugin.html_path is not None and names_claims(config):  # stopped at start-up
        if plugin.html_path.exists():
            sys.stderr.write(f"claim report: kept {plugin.html_path} from an earlier run; this run stopped before any test\n")
        else:
            plugin.write(
                exitstatus=None,
                interrupted=True,
                note="the session ended before running any test: a plugin stopped it at start-up "
                "(e.g. the model could not load); the terminal shows why",
            )
    config.pluginmanager.unregister(plugin, _PLUGIN_NAME)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    """Fail the test, loudly, if a user property cannot travel to the report as JSON."""
    report = yield
    problems = []
    for n, (name, value) in enumerate(list(item.user_properties)):
        why = None if _stopped(value) else check_travels(name, value)
        if why is not None:
            problems.append(why)
            item.user_properties[n] = (name, STOPPED + why)  # later phases travel cleanly; the controller sees why
    if problems:
        report.user_properties = list(item.user_properties)
        report.outcome = "failed"
        report.longrepr = "claim report: a user property cannot travel as JSON:\n" + "\n".join(problems)
    return report


class ClaimReport:
    """Gathers claim items and their outcomes on the controller; hands them on and writes the report once."""

    def __init__(self, config: pytest.Config, html_path: Path | None, later: Path | None = None) -> None:
        self.config = config
        self.html_path = html_path  # None: --no-report, or not (yet) a claims run (outcomes are still gathered)
        self.later = later  # the default path, taken when claim tests turn up in a run that did not name claims/
        self.items: dict[str, ItemResult] = {}  # nodeid -> result, in collection order
        self.collection_errors: list[dict[str, str]] = []
        self.finished = False  # sessionfinish came
        self.written: tuple[Path, Path] | None = None
        self.write_error: str | None = None
        self.kept: str | None = None  # why an earlier report was left in place
        self.start_error: str | None = None  # why the session stopped before any test (e.g. the model did not load)
        self.models: dict[str, dict] = {}  # model -> its run info as a test (on whichever worker) carried it
        self.interrupted: str | None = None  # how a Ctrl-C while writing the report ended (the run then exits 130)

    @pytest.hookimpl(wrapper=True)
    def pytest_sessionstart(self, session: pytest.Session) -> object:
        try:
            return (yield)
        except BaseException as exc:
            self.start_error = f"{type(exc).__name__}: {exc}"
            raise

    @pytest.hookimpl(optionalhook=True)
    def pytest_claim_inputs(self, config: pytest.Config, inputs: list) -> None:
        """Refuse a report pair that would be written over a file the run reads (then nothing is written at the end)."""
        if self.html_path is None:
            return
        given = config.getoption("report")
        label = f"--report {given!r}" if given is not None else f"report path {str(self.html_path)!r}"
        try:
            check_not_inputs(self.html_path, inputs, label)
        except InputError:
            self.html_path = None
            raise

    # -- collection --------------------------------------------------------------------------

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._collected((item.nodeid, _marked(item)) for item in session.items)
        if self.items and self.html_path is None and self.later is not None:
            try:
                check_report_path(self.later, f"report path {str(self.later)!r}")
            except InputError as exc:
                raise pytest.UsageError(str(exc)) from None
            self.html_path, self.later = self.later, None

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: object, ids: list[str]) -> None:
        self._collected((nodeid, None) for nodeid in ids)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed and in_claims(report.nodeid):
            self.collection_errors.append({"nodeid": report.nodeid, "message": _text(report)})

    # -- results -----------------------------------------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        properties = dict((p[0], p[1]) for p in report.user_properties)
        marked = properties.get(CLAIM_PROPERTY)
        if not (report.nodeid in self.items or marked or PROPERTY in properties or (in_claims(report.nodeid) and claim_of(report.nodeid))):
            return
        if self.html_path is None and self.later is not None:  # under xdist the controller sees claim tests only now
            self.html_path, self.later = self.later, None
        item = self.items.setdefault(report.nodeid, ItemResult(report.nodeid))
        item.claim_id = item.claim_id or (str(marked) if marked else None)
        if isinstance(properties.get(MODEL_PROPERTY), str):
            info = json.loads(properties[MODEL_PROPERTY])
            self.models[str(info.get("model"))] = info
            item.model = str(info.get("model"))
        for value in properties.values():
            if _stopped(value) and value not in item.problems:
                item.problems.append(value)
        if PROPERTY in properties and item.outcome is None and not _stopped(properties[PROPERTY]):
            try:
                item.outcome = ClaimOutcome.from_json(properties[PROPERTY])
            except OutcomeError as exc:
                item.problems.append(str(exc))
        if report.when == "call" or report.failed or report.skipped:
            item.pytest_outcome = _pytest_outcome(report, item.pytest_outcome)
            if (report.failed or report.skipped) and not item.message:
                item.message = _text(report)

    # -- the end -----------------------------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.finished = True
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
        complete, why = self._complete(interrupted)
        outcomes = [i.outcome for i in self.items.values() if i.outcome is not None]
        self.config.hook.pytest_claim_outcomes(config=self.config, outcomes=outcomes, complete=complete, why=why)
        if self.html_path is not None:
            if self._measured():
                self.write(exitstatus=int(exitstatus), interrupted=interrupted)
            elif self.html_path.exists():
                self.kept = f"kept {self.html_path} from an earlier run: this run measured no claim"
        if any(i.problems for i in self.items.values()) and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED  # a claim outcome that could not be read is a failure
        if self.interrupted:
            session.exitstatus = INTERRUPTED_EXIT

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.written:
            done = f"; {self.interrupted}" if self.interrupted else ""
            terminalreporter.write_line(f"claim report: {self.written[0]} (numbers: {self.written[1].name}){done}")
        elif self.write_error:
            terminalreporter.write_line(f"claim report NOT written: {self.write_error}", red=True)
        elif self.kept:
            terminalreporter.write_line(f"claim report: {self.kept}")

    def write(self, exitstatus: int | None, interrupted: bool, note: str = "") -> None:
        assert self.html_path is not None
        session = {
            "exitstatus": exitstatus,
            "interrupted": bool(interrupted),
            "note": f"{note}: {self.start_error}" if note and self.start_error else note or self.start_error or "",
            "collection_errors": self.collection_errors,
        }
        try:
            with _interrupt_deferred(self._say) as pressed:
                doc = build_document(list(self.items.values()), self._run_info(), session)
                self.written = write_document(doc, self.html_path)
            if pressed:
                self.interrupted = "interrupted (Ctrl-C) while writing the report; it was finished first"
        except KeyboardInterrupt:  # the second Ctrl-C: write_document has put the pair back as it was
            kept = f"kept {self.html_path} from an earlier run" if self.html_path.exists() else "no report was written"
            self.interrupted = self.write_error = f"interrupted (Ctrl-C) while writing the report: {kept}"
        except Exception as exc:  # say so at the end of the run; the traceback helps fix the renderer
            self.write_error = f"{type(exc).__name__}: {exc} (while writing {self.html_path} / {json_path_for(self.html_path).name})"
            import traceback

            traceback.print_exc(file=sys.stderr)

    def _say(self, line: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(line, yellow=True)
        else:
            sys.stderr.write(line + "\n")

    def _measured(self) -> bool:
        """Whether any claim test ran (or a claims module failed to collect, which the report shows)."""
        return bool(self.collection_errors) or any(i.pytest_outcome != NOT_RUN for i in self.items.values())

    def _complete(self, interrupted: bool) -> tuple[bool, str]:
        """Whether every collected claim test ran to an outcome, and if not, why."""
        if interrupted:
            return False, "the run was interrupted"
        if not self.items:
            return False, "no claim test ran"
        unfinished = [i.nodeid for i in self.items.values() if i.outcome is None or i.problems]
        if unfinished:
            return False, f"{len(unfinished)} of {len(self.items)} claim tests ended without an outcome (first: {unfinished[0]})"
        return True, ""

    def _collected(self, collected: object) -> None:
        """Every claim test collected, (node id, the claim its marker names or None), before any ran."""
        for nodeid, claim in collected:
            if (claim or (in_claims(nodeid) and claim_of(nodeid))) and nodeid not in self.items:
                self.items[nodeid] = ItemResult(nodeid, claim_id=claim)

    def _run_info(self) -> dict:
        info: dict = {}
        try:
            info.update(self.config.hook.pytest_claim_report_run_info(config=self.config) or {})
        except Exception as exc:  # report what is known
            info["error"] = f"{type(exc).__name__}: {exc}"
        if self.start_error:
            info["error"] = f"the session stopped before running tests: {self.start_error}"
        if info.get("models"):  # what each model's tests carried (loaded on a worker, or why it did not load)
            info["models"] = [self.models.get(str(m.get("model")), m) for m in info["models"]]
        outcomes = [i.outcome for i in self.items.values() if i.outcome]
        if outcomes:
            info.setdefault("model", outcomes[0].model)
            info.setdefault("layer", outcomes[0].layer)
        if "revision" not in info:
            revisions = [(o.evidence.get("profile") or {}).get("revision") for o in outcomes]
            info["revision"] = next((r for r in revisions if r), None)
        info.setdefault("command", " ".join(["pytest", *self.config.invocation_params.args]))
        info["date"] = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
        return info


# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _interrupt_deferred(say: Callable[[str], None]) -> Iterator[list[int]]:
    """Inside, a first Ctrl-C is noted in the yielded list and the report is still written; a second raises
    KeyboardInterrupt (write_document then keeps the old pair). Outside the main thread signals cannot be caught."""
    pressed: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield pressed
        return

    def noted(signum: int, frame: object) -> None:
        if pressed:
            raise KeyboardInterrupt
        pressed.append(signum)
        say("claim report: Ctrl-C: finishing the report of the tests that ran first; Ctrl-C again to stop without it")

    previous = signal.signal(signal.SIGINT, noted)
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, previous)


def _marked(item: pytest.Item) -> str | None:
    """The id of the claim an item's `claim` marker names (a Claim or an id), else None."""
    marker = item.get_closest_marker("claim")
    if marker is None or not marker.args:
        return None
    return str(getattr(marker.args[0], "id", marker.args[0]))


def _stopped(value: object) -> bool:
    """Whether a user property is the marker left where a value could not travel."""
    return isinstance(value, str) and value.startswith(STOPPED)


def _pytest_outcome(report: pytest.TestReport, previous: str) -> str:
    if report.failed:
        return "failed" if report.when == "call" else "error"
    if report.skipped:
        return "skipped"
    return "passed" if previous == NOT_RUN else previous


def _text(report: pytest.BaseReport, lines: int = 40) -> str:
    text = report.longreprtext or ""
    if report.skipped and isinstance(report.longrepr, tuple):
        text = f"skipped: {report.longrepr[2]}"
    return "\n".join(text.splitlines()[-lines:])
