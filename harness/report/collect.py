"""The report's pytest plugin: gather every claim test's outcome and write the report at the end.

    pytest claims/                          # reports/claims.html and reports/claims.json
    pytest claims/ --report out/run.html    # out/run.html and out/run.json
    pytest claims/ --no-report
    pytest claims/ -n 2                     # one report, written by the xdist controller

Registered from the top-level conftest.py (`pytest_plugins = [..., "harness.report.collect"]`).
A report is written only when the session collected or ran tests under `claims/`, and it is
written even when the run is interrupted or tests error: claims with no outcome show "not run".

Each claim test attaches `("claim_outcome", <JSON string>)` to `item.user_properties`; pytest
copies it into every TestReport and xdist ships it to the controller. On the side where the test
runs, `pytest_runtest_makereport` checks that every user property can travel as JSON; one that
cannot fails that test with a message saying which property and why (never a crash, never a pass).

Run information for the header comes from the `pytest_claim_report_run_info(config)` hook when a
plugin implements it, otherwise from `harness.plugin.run_info(config)`; "date" is added here.
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

import pytest

from harness.report.outcomes import PROPERTY, ItemResult, OutcomeError, build_document, check_travels, claim_of, parse_outcome
from harness.report.write import json_path_for, write_document

CLAIMS_DIR = "claims"
DEFAULT_REPORT = "reports/claims.html"
_PLUGIN_NAME = "harness-claim-report"
STOPPED = "claim report: could not travel: "  # replaces a user property that is not JSON-ready


class _HookSpecs:
    @pytest.hookspec(firstresult=True)
    def pytest_claim_report_run_info(self, config: pytest.Config) -> dict | None:
        """Return the run information shown in the report's header (model, revision, device, ...)."""


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(_HookSpecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("claim report")
    group.addoption(
        "--report",
        metavar="PATH",
        default=None,
        help=f"write the claim report's HTML to PATH (relative to the rootdir) and its JSON twin beside it, "
        f"same name ending in .json (default: {DEFAULT_REPORT}).",
    )
    group.addoption("--no-report", action="store_true", default=False, help="write no claim report (neither HTML nor JSON).")


@pytest.hookimpl(tryfirst=True)  # before the suite's plugin, which may stop the run when the model cannot load
def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("no_report") or hasattr(config, "workerinput"):
        return  # xdist workers never write: their reports reach the controller, which does
    path = Path(config.getoption("report") or DEFAULT_REPORT)
    config.pluginmanager.register(ClaimReport(config, path if path.is_absolute() else config.rootpath / path), _PLUGIN_NAME)


def pytest_unconfigure(config: pytest.Config) -> None:
    plugin = config.pluginmanager.get_plugin(_PLUGIN_NAME)
    if plugin is not None and not plugin.written and plugin._wanted() and plugin.html_path.exists():
        # stopped at start-up (bad option, model not loadable): nothing ran, so keep the last real report
        sys.stderr.write(f"claim report: kept {plugin.html_path} from an earlier run; this run stopped before any test\n")
    elif plugin is not None:
        plugin.finish(  # writes only if sessionfinish never came
            exitstatus=None,
            interrupted=True,
            note="the session ended before running any test: a plugin stopped it at start-up "
            "(e.g. the model could not load); the terminal shows why",
        )
    if plugin is not None:
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
    """Collects claim items and their reports on the controller; writes the report once."""

    def __init__(self, config: pytest.Config, html_path: Path) -> None:
        self.config = config
        self.html_path = html_path
        self.items: dict[str, ItemResult] = {}  # nodeid -> result, in collection order
        self.collection_errors: list[dict[str, str]] = []
        self.asked = _args_name_claims(config)
        self.written: tuple[Path, Path] | None = None
        self.write_error: str | None = None
        self.start_error: str | None = None  # why the session stopped before any test (e.g. the model did not load)

    @pytest.hookimpl(wrapper=True)
    def pytest_sessionstart(self, session: pytest.Session) -> object:
        try:
            return (yield)
        except BaseException as exc:
            self.start_error = f"{type(exc).__name__}: {exc}"
            raise

    # -- collection --------------------------------------------------------------------------

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._collected(item.nodeid for item in session.items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: object, ids: list[str]) -> None:
        self._collected(ids)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed and _in_claims(report.nodeid):
            self.collection_errors.append({"nodeid": report.nodeid, "message": _text(report)})

    # -- results -----------------------------------------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        properties = dict((p[0], p[1]) for p in report.user_properties)
        if not (_in_claims(report.nodeid) and (claim_of(report.nodeid) or PROPERTY in properties)):
            return
        item = self.items.setdefault(report.nodeid, ItemResult(report.nodeid))
        for value in properties.values():
            if _stopped(value) and value not in item.problems:
                item.problems.append(value)
        if PROPERTY in properties and item.outcome is None and not _stopped(properties[PROPERTY]):
            try:
                item.outcome = parse_outcome(properties[PROPERTY])
            except OutcomeError as exc:
                item.problems.append(str(exc))
        if report.when == "call" or report.failed or report.skipped:
            item.pytest_outcome = _pytest_outcome(report, item.pytest_outcome)
            if (report.failed or report.skipped) and not item.message:
                item.message = _text(report)

    # -- writing -----------------------------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.finish(exitstatus=int(exitstatus), interrupted=exitstatus == pytest.ExitCode.INTERRUPTED)
        if any(i.problems for i in self.items.values()) and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED  # a claim outcome that could not be read is a failure

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.written:
            terminalreporter.write_line(f"claim report: {self.written[0]} (numbers: {self.written[1].name})")
        elif self.write_error:
            terminalreporter.write_line(f"claim report NOT written: {self.write_error}", red=True)

    def finish(self, exitstatus: int | None, interrupted: bool, note: str = "") -> None:
        if self.written or self.write_error or not self._wanted():
            return
        session = {
            "exitstatus": exitstatus,
            "interrupted": bool(interrupted),
            "note": self.start_error or note,
            "collection_errors": self.collection_errors,
        }
        try:
            doc = build_document(list(self.items.values()), self._run_info(), session)
            self.written = write_document(doc, self.html_path)
        except Exception as exc:  # say so at the end of the run; the traceback helps fix the renderer
            self.write_error = f"{type(exc).__name__}: {exc} (while writing {self.html_path} / {json_path_for(self.html_path).name})"
            import traceback

            traceback.print_exc(file=sys.stderr)

    def _wanted(self) -> bool:
        return bool(self.items or self.collection_errors or self.asked)

    def _collected(self, nodeids: object) -> None:
        for nodeid in nodeids:
            if _in_claims(nodeid) and claim_of(nodeid) and nodeid not in self.items:
                self.items[nodeid] = ItemResult(nodeid)

    def _run_info(self) -> dict:
        info: dict = {}
        try:
            found = self.config.hook.pytest_claim_report_run_info(config=self.config)
            if found is None:
                from harness.plugin import run_info  # the suite's own plugin

                found = run_info(self.config)
            info.update(found or {})
        except Exception as exc:  # e.g. the model failed to load: report what is known
            info["error"] = f"{type(exc).__name__}: {exc}"
        if self.start_error:
            info["error"] = f"the session stopped before running tests: {self.start_error}"
        if "prompt_texts" not in info and info.get("prompts"):
            try:
                from harness.prompts import read_prompts

                info["prompt_texts"] = read_prompts(Path(str(info["prompts"])))
            except Exception:  # the header still names the file
                pass
        outcomes = [i.outcome for i in self.items.values() if i.outcome]
        for key in ("model", "layer"):
            if key not in info and outcomes:
                info[key] = outcomes[0].get(key)
        if "revision" not in info:
            revisions = [((o.get("evidence") or {}).get("profile") or {}).get("revision") for o in outcomes]
            info["revision"] = next((r for r in revisions if r), None)
        info.setdefault("command", " ".join(["pytest", *self.config.invocation_params.args]))
        info["date"] = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
        return info


# ---------------------------------------------------------------------------------------------


def _stopped(value: object) -> bool:
    """Whether a user property is the marker left where a value could not travel."""
    return isinstance(value, str) and value.startswith(STOPPED)


def _in_claims(nodeid: str) -> bool:
    return nodeid == CLAIMS_DIR or nodeid.startswith(CLAIMS_DIR + "/")


def _args_name_claims(config: pytest.Config) -> bool:
    """Whether the command line names claims/ or something inside it."""
    claims = (config.rootpath / CLAIMS_DIR).resolve()
    for arg in config.args:
        path = Path(str(arg).split("::", 1)[0])
        path = (config.invocation_params.dir / path).resolve()
        if path == claims or claims in path.parents:
            return True
    return False


def _pytest_outcome(report: pytest.TestReport, previous: str) -> str:
    if report.failed:
        return "failed" if report.when == "call" else "error"
    if report.skipped:
        return "skipped"
    return "passed" if previous == "not run" else previous


def _text(report: pytest.BaseReport, lines: int = 40) -> str:
    text = report.longreprtext or ""
    if report.skipped and isinstance(report.longrepr, tuple):
        text = f"skipped: {report.longrepr[2]}"
    return "\n".join(text.splitlines()[-lines:])
