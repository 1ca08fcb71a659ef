"""Settings, the options made from them, the outcome record and the expectations file: fast, no model.

One walk over the Settings fields checks that the CLI flags, the pytest options and the fields
agree (names, defaults, help); the outcome record survives its JSON round trip; expectations are
keyed by layer and edited without losing comments, reasons or the file's mode.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import stat
import tomllib
from pathlib import Path

import numpy as np
import pytest

from harness import cli
from harness.errors import InputError
from harness.judge.expectations import Expectation, load_expectations, read_table, write_expectations
from harness.judge.outcome import STATUSES, ClaimOutcome, Example, status_of
from harness.judge.verdict import Verdict
from harness.note import CLAIMS
from harness.settings import CLI, PYTEST, Settings, options

pytest_plugins = ["pytester"]


# ---------------------------------------------------------------------------------------------
# One source for every option


def _cli_actions() -> dict[str, argparse.Action]:
    parser = cli._parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["profile"]
    return {flag: action for action in sub._actions for flag in action.option_strings}


def test_cli_flags_pytest_options_and_settings_fields_agree(pytestconfig):
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    opts = options()
    assert [o.name for o in opts] == list(fields)  # every field is an option, in field order
    actions = _cli_actions()
    parser = pytestconfig._parser  # the plugin's options as pytest registered them
    pytest_options = {name: opt for group in parser._groups for opt in group.options for name in opt.names()}
    for option in opts:
        assert option.default == fields[option.name].default
        if CLI in option.where:
            action = actions[option.flag]
            assert action.dest == option.name and action.help == option.help_text()
            assert action.default is None  # the default comes from Settings, and only from there
        else:
            assert option.flag not in actions, f"{option.flag} is marked pytest-only"
        if PYTEST in option.where:
            registered = pytest_options[option.flag]
            assert registered.dest == option.name and registered.attrs()["help"] == f"{option.help_text()} [{option.env}]"
        else:
            assert option.flag not in pytest_options, f"{option.flag} is marked CLI-only"
    # the CLI's other flags shape the output only, never the numbers
    settings_flags = {o.flag for o in opts}
    others = {f for f in actions if f.startswith("--") and f not in settings_flags and f != "--help"}
    assert others == set(cli.OUTPUT_FLAGS)
    # a command line with no flags gives Settings' defaults
    assert cli.settings_from(cli._parser().parse_args(["profile"])) == Settings().validated()
    assert "--seed" in pytest_options and "--memory-budget-mb" in pytest_options


def test_a_value_from_a_flag_and_from_the_environment_is_named_as_given():
    with pytest.raises(InputError, match=r"^--layer 'abc' is not an integer: give a block index"):
        Settings.from_text({"layer": ("abc", "--layer")})
    with pytest.raises(InputError, match=r"^HARNESS_LAYER='abc' is not an integer"):
        Settings.from_text({"layer": ("abc", "HARNESS_LAYER")})
    with pytest.raises(InputError, match=r"^--factor-batch 'abc' is not an integer: give a positive count of factors"):
        Settings.from_text({"factor_batch": ("abc", "--factor-batch")})
    assert Settings.from_text({"factor_batch": ("auto", "--factor-batch")}).factor_batch is None
    assert Settings.from_text({"factors": (["-0.5", "2"], "--factor")}).factors == (-0.5, 2.0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"layer": 2.0}, "layer=2.0 is not an integer"),
        ({"layer": True}, "layer=True is not allowed"),
        ({"layer": -1}, "layer=-1 is below 0"),
        ({"factors": (0.5, math.inf)}, "factors must be finite"),
        ({"factors": ()}, "no factors given"),
        ({"factor_batch": 0}, "factor_batch=0 is below 1"),
        ({"dtype": "int4"}, "dtype='int4' is not supported: choose one of float32, bfloat16, float16, auto"),
        ({"prepend_bos": "maybe"}, "prepend_bos='maybe' is not supported: choose one of auto, yes, no"),
        ({"memory_budget_mb": 8}, "memory_budget_mb=8 is below 16"),
        ({"reuse_prefix": "yes"}, "reuse_prefix='yes' is not allowed: give True or False"),
    ],
)
def test_python_values_are_checked_with_the_same_rules(changes, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        Settings(**changes).validated()


def test_integer_like_numpy_scalars_are_integers():
    checked = Settings(layer=np.int64(3), seed=np.int32(1)).validated()
    assert checked.layer == 3 and type(checked.layer) is int and type(checked.seed) is int


def test_negative_values_are_values_on_the_command_line():
    parser = cli._parser()
    for argv in (["profile", "--factor", "-inf"], ["profile", "--factor=-inf"]):
        args = parser.parse_args(cli.values_kept(argv, parser))
        assert args.factors == ["-inf"]
        with pytest.raises(InputError, match=r"--factor '-inf' is not allowed: factors must be finite"):
            cli.settings_from(args)
    args = parser.parse_args(cli.values_kept(["profile", "--factor", "-0.5", "--layer", "1"], parser))
    assert cli.settings_from(args).factors == (-0.5,)


# ---------------------------------------------------------------------------------------------
# The outcome record


def _outcome() -> ClaimOutcome:
    evidence = {"readings": {"note": {"drop": -math.inf}}, "ratio": np.array([1.5, math.nan])}
    verdict = Verdict(
        "C4", "refuted", -math.inf, "drop = -inf", "Δ rises", evidence, statistic=0.25, threshold=0.5, ci95=(0.1, math.inf), fragile=True
    )
    examples = (Example(0.7, "refuted", "refuted", -0.2, "drop -0.2", {"layer": 3}),)
    return ClaimOutcome.measured(
        verdict, CLAIMS["C4"], "holds", nodeid="claims/x.py::test_C4_x", model="m", layer=5, factor=0.5, examples=examples
    )


def test_an_outcome_survives_its_json_round_trip_unchanged():
    outcome = _outcome()
    text = outcome.to_json()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert ClaimOutcome.from_json(text) == outcome
    assert ClaimOutcome.from_json(ClaimOutcome.from_json(text).to_json()).to_json() == text
    assert outcome.status == "refuted" and outcome.margin == "-inf"  # spelled out, as the report spells it
    assert outcome.evidence["readings"]["note"]["drop"] == "-inf" and outcome.evidence["ratio"] == [1.5, "nan"]
    assert outcome.ci95 == (0.1, "inf") and outcome.statistic == 0.25 and outcome.fragile is True
    assert outcome.thresholds == {"DROP_MIN": 1e-3, "SLIGHT_DROP_MAX": 0.5, "PROMPT_SHARE": 0.75}


def test_the_status_rule_covers_every_pair_once():
    seen = {(v, e): status_of(v, e) for v in ("holds", "refuted", "not-applicable") for e in ("holds", "refuted", "not-applicable")}
    assert seen[("holds", "holds")] == "holds" and seen[("refuted", "refuted")] == "refuted as expected"
    assert seen[("holds", "refuted")] == "unexpected pass" and seen[("refuted", "holds")] == "refuted"
    assert {seen[k] for k in seen if "not-applicable" in k} == {"not applicable"}
    assert set(seen.values()) <= set(STATUSES)


def test_an_old_record_renders_with_the_thresholds_it_carried():
    old = dataclasses.replace(_outcome(), thresholds={"DROP_MIN": 0.05})
    again = ClaimOutcome.from_dict(json.loads(old.to_json()))
    assert again.thresholds == {"DROP_MIN": 0.05}
    from harness.report import build_document
    from harness.report.outcomes import ItemResult
    from harness.report.render import _claim_view

    doc = build_document([ItemResult(again.nodeid, outcome=again, pytest_outcome="failed")], {"model": "m"})
    view = _claim_view(next(c for c in doc["claims"] if c["claim"] == "C4"))
    assert view["thresholds"] == {"DROP_MIN": 0.05}


# ---------------------------------------------------------------------------------------------
# Expectations


BASE = """\
# hand-written header
[minilm]
C1 = { verdict = "holds", reason = "written by hand" }  # keep this comment
C3 = { verdict = "refuted", reason = "post-LN" }
"""


def test_expectations_are_keyed_by_layer_with_the_models_section_as_fallback(tmp_path):
    path = tmp_path / "e.toml"
    path.write_text(BASE + '\n[minilm.layer-4]\nC3 = { verdict = "holds", reason = "at 4" }\n')
    at_note = load_expectations(path, "minilm", 2)
    at_four = load_expectations(path, "minilm", 4)
    at_three = load_expectations(path, "minilm", 3)
    assert at_note["C3"] == Expectation("refuted", "post-LN") and at_note["C3"].where == "[minilm]"
    assert at_four["C3"] == Expectation("holds", "at 4") and at_four["C3"].where == "[minilm.layer-4]" and at_four["C1"].where == "[minilm]"
    assert at_three["C3"].verdict == "refuted"  # no section for layer 3: the model's own
    other = load_expectations(path, "other", 4)  # no section: structural claims the note's, empirical ones findings
    assert (other["C1"].verdict, other["C3"].verdict, other["C3"].where) == ("holds", "finding", "no section")


def test_updating_keeps_comments_reasons_other_layers_and_the_mode(tmp_path):
    path = tmp_path / "e.toml"
    path.write_text(BASE)
    os.chmod(path, 0o664)
    new = {
        "C1": Expectation("holds", "measured: x"),
        "C3": Expectation("holds", "measured: grows"),
        "C5": Expectation("refuted", "measured: y"),
    }
    write_expectations(path, "minilm", new, layer=4)
    write_expectations(path, "minilm", {"C1": Expectation("holds", "measured: x"), "C5": Expectation("refuted", "measured: y")}, layer=2)
    text = path.read_text()
    assert text.startswith("# hand-written header") and "# keep this comment" in text
    table = tomllib.loads(text)
    assert table["minilm"]["C1"]["reason"] == "written by hand"  # same verdict: the hand-written reason stays
    assert table["minilm"]["C3"] == {"verdict": "refuted", "reason": "post-LN"}  # the note's layer untouched by layer 4
    assert table["minilm"]["layer-4"]["C3"] == {"verdict": "holds", "reason": "measured: grows"}
    assert table["minilm"]["C5"]["verdict"] == "refuted"
    assert stat.S_IMODE(path.stat().st_mode) == 0o664
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.toml"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('minilm = "holds"\n', "minilm = 'holds' is not a section"),
        ('[minilm]\n"9 lives" = "holds"\n', "[minilm] names '9 lives': a claim id"),
        ('[minilm]\nC1 = "maybe"\n', "[minilm] C1 expects 'maybe'"),
        ('[minilm]\nC1 = { verdict = "holds", why = "x" }\n', "C1 has 'why'"),
        ('[minilm.layer-4]\nC1 = "nope"\n', "[minilm.layer-4] C1 expects 'nope'"),
        ("[minilm\n", "is not valid TOML"),
    ],
)
def test_a_malformed_expectations_file_names_the_offending_key(tmp_path, text, message):
    path = tmp_path / "e.toml"
    path.write_text(text)
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("(", r"\(")):
        read_table(path)


def test_every_claim_in_the_shipped_file_is_known():
    table = read_table(Path(__file__).resolve().parent.parent / "harness" / "note" / "expectations.toml")
    assert set(table["minilm"]) <= set(CLAIMS)


# ---------------------------------------------------------------------------------------------
# The CLI does what its help says


@pytest.fixture(scope="module")
def minilm():
    from harness.model import load_subject

    return load_subject("minilm", device="cpu")


def test_cli_passes_factor_batch_and_records_the_settings(minilm, monkeypatch, capsys):
    import harness

    seen = {}
    real = harness.profile

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(harness, "profile", spy)
    monkeypatch.setattr(cli, "load_subject_for", lambda s: minilm)
    argv = ["profile", "--model", "minilm", "--prompt", "The cat sat on the mat.", "--factor", "0.5", "--factor", "1.5", "--factor", "2"]
    assert cli.main([*argv, "--factor-batch", "3", "--reuse-prefix", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert seen["factor_batch"] == 3 and seen["reuse_prefix"] is True
    assert out["factor_batch"] == 3 and out["reuse_prefix"] is True and out["include_first_token"] is False
    expected = {**Settings().as_dict(), "model": "minilm", "factors": [0.5, 1.5, 2.0], "factor_batch": 3, "reuse_prefix": True}
    assert out["settings"] == expected
    assert cli.main(argv) == 0 and seen["factor_batch"] == 1 and seen["reuse_prefix"] is False  # the defaults, from Settings


def test_include_first_token_changes_the_tables_numbers(minilm, monkeypatch, capsys):
    from harness import profile

    monkeypatch.setattr(cli, "load_subject_for", lambda s: minilm)
    argv = ["profile", "--model", "minilm", "--prompt", "The cat sat on the mat.", "--factor", "0.5"]
    prof = profile(minilm, ["The cat sat on the mat."], 2, [0.5])
    for extra, delta in (([], prof.delta), (["--include-first-token"], prof.delta_all_tokens)):
        assert cli.main(argv + extra) == 0
        rows = capsys.readouterr().out.splitlines()[4:]
        shown = [float(row.split("|")[1].split()[0]) for row in rows]
        assert shown == pytest.approx(delta[0].tolist(), rel=1e-3, abs=1e-12)
    assert not np.allclose(prof.delta[0, 3:], prof.delta_all_tokens[0, 3:])  # the two readings differ, so the test can fail


# ---------------------------------------------------------------------------------------------
# The Hypothesis record takes each example's own verdict


class _Node:
    nodeid = "claims/test_c4.py::test_C4_drawn"

    def __init__(self) -> None:
        self.user_properties: list[tuple[str, str]] = []


def test_the_hypothesis_record_shows_the_off_example_with_its_own_verdict():
    from harness.suite.checks import ClaimCheck

    check = ClaimCheck(_Node(), "C4", Expectation("holds", "the note"), Settings(model="m"))
    verdicts = [
        Verdict("C4", "holds", 0.3, "drop 0.3", "first: drops", {"n": 1}),
        Verdict("C4", "refuted", -0.1, "drop -0.1", "second: rises", {"n": 2}),
        Verdict("C4", "holds", 0.2, "drop 0.2", "third: drops", {"n": 3}),
    ]

    def run() -> None:
        for n, verdict in enumerate(verdicts):
            try:
                check.example(verdict, 0.5 + n / 10)
            except BaseException:  # the refuted example fails the test; Hypothesis would go on to the others here
                pass

    check.hypothesis(run)
    record = ClaimOutcome.from_json(check.node.user_properties[-1][1])
    assert record.verdict == "refuted" and record.reason == "second: rises" and record.evidence["n"] == 2  # not the last one run
    assert record.margin == -0.1 and [e.factor for e in record.examples] == [0.5, 0.6, 0.7]
    assert [e.status for e in record.examples] == ["holds", "refuted", "holds"]
