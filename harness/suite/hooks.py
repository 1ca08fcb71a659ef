"""The claims suite's layout and the hooks between its two pytest plugins, each stated once.

    claims_dir(config)          # <rootdir>/claims: the claim tests, prompts.txt, expectations.toml
    names_claims(config)        # does this command line run anything under claims/?
    runs_tests(config)          # will tests run (not --co, --fixtures, --setup-plan)?
    in_claims("claims/test_c3_growth.py::test_C3_growth[0.5]")   # True

`harness.suite.plugin` (settings, subject, fixtures, expectations) implements the run-info hook and
calls `pytest_claim_inputs`; `harness.report.collect` (gathers each claim test's outcome, writes the
report) declares them all, implements that one and calls the others. Neither imports the other.
"""

from __future__ import annotations

from pathlib import Path

import pytest

CLAIMS_FOLDER = "claims"  # relative to pytest's rootdir; node ids under it start with "claims/"
# The user property by which a claim test carries its model's run info (JSON: describe(), layer, layers,
# or the error it could not load with) to the report, from whichever xdist worker ran it.
MODEL_PROPERTY = "claim_model"
# The user property by which a claim test names its claim's id (its `claim` marker's), so the report knows
# which claim a test judges also when it ends without an outcome on an xdist worker.
CLAIM_PROPERTY = "claim_id"


class SuiteHooks:
    """Hookspecs, registered by harness.report.collect."""

    @pytest.hookspec(firstresult=True)
    def pytest_claim_report_run_info(self, config: pytest.Config) -> dict | None:
        """Return the run information for the report's header: model, revision, device, dtype, layer,
        prompts, prompt_texts, settings, versions, ... (harness.suite.plugin implements it)."""

    def pytest_claim_inputs(self, config: pytest.Config, inputs: list) -> None:
        """Called once at start-up, before any model loads, with every file the run reads as (what, Path) pairs
        (harness.suite.plugin calls it); raise harness.errors.InputError to refuse a report path that would overwrite one."""

    def pytest_claim_outcomes(self, config: pytest.Config, outcomes: list, complete: bool, why: str) -> None:
        """Called once on the controller at the end of a claims run with every claim outcome
        (harness.judge.outcome.ClaimOutcome); `complete` is False, with `why`, when the run was interrupted
        or a collected claim test ended without an outcome."""


def claims_dir(config: pytest.Config) -> Path:
    return config.rootpath / CLAIMS_FOLDER


def in_claims(nodeid: str) -> bool:
    return nodeid == CLAIMS_FOLDER or nodeid.startswith(CLAIMS_FOLDER + "/")


def names_claims(config: pytest.Config) -> bool:
    """Whether the command line's paths (or testpaths) name claims/, something in it, or a folder above it."""
    claims = claims_dir(config).resolve()
    for arg in config.args:
        path = (config.invocation_params.dir / str(arg).split("::", 1)[0]).resolve()
        if path == claims or claims in path.parents or path in claims.parents:
            return True
    return False


def runs_tests(config: pytest.Config) -> bool:
    """False for runs that only list or describe tests: --help, --markers, --co, --fixtures, --setup-plan."""
    option = config.option
    return not any(
        getattr(option, name, False) for name in ("help", "markers", "collectonly", "showfixtures", "show_fixtures_per_test", "setupplan")
    )
