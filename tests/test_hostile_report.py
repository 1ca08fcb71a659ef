"""Careless and hostile input, round 2 (issue 19): the report, the expectations file and `report merge`.

One test per row, as in tests/test_hostile.py: each asserts the message, the exit code and the
files on disk. The suite's start-up checks run the real claims suite in-process (nothing loads a
model); the Ctrl-C rows run a fake claims suite (pytester) and the CLI in-process; the merge rows
write JSON files and run `python -m harness report merge`'s entry point.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import tomllib
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import cli
from harness.judge.expectations import Expectation, load_expectations, write_expectations
from harness.judge.outcome import FINDING, STATUSES, ClaimOutcome, status_of
from harness.note import CLAIMS
from harness.report import write
from harness.report.merge import main as merge_main
from harness.report.outcomes import ItemResult, build_document
from harness.report.render import STATUS_STYLES, css_class, render_html
from tests import test_hostile as hostile
from tests.test_report_pytester import fake_suite

ROOT = Path(__file__).resolve().parent.parent
NO_MODEL = hostile.NO_MODEL  # a model that does not exist: these checks come before any load
suite = hostile.suite  # the real claims suite, in-process, with a clean environment

pytest_plugins = ["pytester"]


def _one_line_exit(code: int, expected: int, err: str, message: str) -> None:
    assert code == expected, err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


# ---------------------------------------------------------------------------------------------
# Documents made by the report's own code


def _document(model: str, statuses: tuple[str, ...] = ("holds",), **run: object) -> dict:
    """A claim report's JSON twin with one C1 item per status, made by the report's own build_document."""
    setting = {"model": model, "device": "cpu", "dtype": "float32", "layer": 2, "prompts": "/home/p.txt", "seed": 0, "layers": None}
    setting.update({k: run.pop(k) for k in list(run) if k in setting or k in ("memory_budget_mb", "factor_batch")})
    items = []
    for n, status in enumerate(statuses):
        verdict = "not-applicable" if status == "not applicable" else "holds" if status.endswith(("holds", "pass")) else "refuted"
        outcome = ClaimOutcome(claim="C1", verdict=verdict, expected="holds", status=status, margin=0.5, margin_text="m", reason="r",
                               evidence={}, nodeid=f"claims/test_c1.py::test_C1_note[{model}-{n}]", model=model, layer=2)  # fmt: skip
        items.append(ItemResult(outcome.nodeid, outcome=outcome, pytest_outcome="passed"))
    info = {"model": model, "layer": setting["layer"], "settings": setting, "prompt_texts": ["One.", "Two.", "Three."], **run}
    return build_document(items, info, {"exitstatus": 0})


def _set(doc: dict, change) -> str:
    doc = copy.deepcopy(doc)
    change(doc)
    return json.dumps(doc)


# ---------------------------------------------------------------------------------------------
# Row 2: a report path that would overwrite one of the run's inputs


def _inputs(folder: Path) -> None:
    (folder / "model").mkdir()
    (folder / "model" / "config.json").write_text('{"model_type": "llama"}')
    for name in ("e.json", "e.toml"):
        (folder / name).write_text((ROOT / "harness" / "note" / "expectations.toml").read_text())
    for name in ("run.json", "run2.html"):
        (folder / name).write_text(hostile.PROMPTS)


@pytest.mark.parametrize(
    ("args", "env", "report", "message"),
    [
        (["--expectations", "{w}/e.json"], {}, "e.html", "would write its JSON twin '{w}/e.json' over the expectations file"),
        (["--prompts", "{w}/run.json"], {}, "run.html", "would write its JSON twin '{w}/run.json' over the prompts file"),
        (["--prompts", "{w}/run2.html"], {}, "run2.html", "would write its page '{w}/run2.html' over the prompts file"),
        ([], {"HARNESS_EXPECTATIONS": "{w}/e.json"}, "e.html", "over the expectations file '{w}/e.json'"),
        (["--model", "{w}/model"], {}, "model/config.html", "over 'config.json' of the model '{w}/model'"),
    ],
    ids=["expectations-twin", "prompts-twin", "prompts-page", "env-expectations", "model-config"],
)
def test_a_report_over_an_input_of_the_run_is_refused_at_start_up(suite, tmp_path, args, env, report, message):
    _inputs(tmp_path)
    before = hostile._snapshot(tmp_path)
    fill = {k: v.replace("{w}", str(tmp_path)) for k, v in env.items()}
    model = [] if "--model" in args else NO_MODEL
    result = suite(*model, *(a.replace("{w}", str(tmp_path)) for a in args), "--report", str(tmp_path / report), env=fill)
    hostile._one_line(result, 4, message.replace("{w}", str(tmp_path)))
    assert "give the report another name" in result.stderr.str()
    assert hostile._snapshot(tmp_path) == before  # the input untouched, and no page written beside it


def test_merge_refuses_an_output_whose_page_or_twin_is_an_input(tmp_path, capsys):
    (tmp_path / "a.json").write_text(json.dumps(_document("m")))
    before = hostile._snapshot(tmp_path)
    code = merge_main(["merge", str(tmp_path / "a.json"), "-o", str(tmp_path / "sub" / ".." / "a.html")])
    _one_line_exit(code, 2, capsys.readouterr().err, "would write its JSON twin")
    assert hostile._snapshot(tmp_path) == before


# ---------------------------------------------------------------------------------------------
# Row 3: every status has a valid class and a style; findings are visible


def test_every_status_has_a_valid_class_and_a_style_on_the_page():
    html = render_html(_document("m", statuses=STATUSES))
    style = html[html.index("<style>") : html.index("</style>")]
    for status in STATUSES:
        name = css_class(status)
        assert re.fullmatch(r"st-[a-z0-9-]+", name), name
        rule = re.search(rf"\.{name} \{{ background: (#[0-9a-f]{{6}}); color: (#[0-9a-f]{{6}});", style)
        assert rule and rule.groups() == STATUS_STYLES[status][:2] and rule.group(1) != rule.group(2), (status, rule)
        assert f'<span class="status {name}">{status}</span>' in html  # the badge the verdict table and the counts line use
    assert css_class("finding: holds") == "st-finding-holds" and css_class("finding: refuted") == "st-finding-refuted"
    counts = html[html.index('<p id="session">') : html.index("</p>", html.index('<p id="session">'))]
    assert all(f'class="status {css_class(s)}">{s}</span> 1 ' in counts for s in STATUSES), counts


# ---------------------------------------------------------------------------------------------
# Rows 4 and 5: sections of the expectations file per layer


def test_a_model_with_only_another_layers_section_is_not_judged_at_the_other_layers(tmp_path):
    path = tmp_path / "e.toml"
    path.write_text("[minilm]\nC3 = 'refuted'\n")
    written = {"C3": Expectation("refuted", "measured: a step ratio below 1"), "C4": Expectation("not-applicable", "too shallow")}
    write_expectations(path, "random-gpt2", written, layer=4)  # what --update-expectations --layer 4 writes
    assert tomllib.loads(path.read_text()) == {
        "minilm": {"C3": "refuted"},
        "random-gpt2": {"layer-4": {c: {"verdict": e.verdict, "reason": e.reason} for c, e in written.items()}},
    }
    at_four = load_expectations(path, "random-gpt2", 4)
    assert (at_four["C3"].verdict, at_four["C3"].where) == ("refuted", "[random-gpt2.layer-4]")
    assert (at_four["C5"].verdict, at_four["C5"].where) == (FINDING, "no section")  # no entry at 4 and none of its own
    for layer in (2, 3):  # the note's layer and a layer map's: still "no section", as before the update
        table = load_expectations(path, "random-gpt2", layer)
        assert {c: e.verdict for c, e in table.items()} == {c: e.verdict for c, e in load_expectations(path, "other", layer).items()}
        assert table["C3"].where == "no section" and "only [random-gpt2.layer-4]" in table["C3"].reason
        assert table["C1"].verdict == "holds"  # structural claims hold for any weights
    assert load_expectations(path, "minilm", 2)["C3"].verdict == "refuted"  # a model with its own entries: judged


@pytest.mark.slow
def test_update_expectations_at_one_layer_leaves_a_new_models_other_layers_unjudged(tmp_path):
    """The issue's run: --update-expectations --layer 4 on a model without a section, then a default run."""
    expectations = tmp_path / "e.toml"
    expectations.write_text("[gpt2]\n")
    (tmp_path / "p.txt").write_text(hostile.PROMPTS)
    common = ["claims/test_c3_growth.py", "--model", "minilm", "--prompts", str(tmp_path / "p.txt"), "--expectations", str(expectations)]
    update = hostile._pytest(*common, "--layer", "1", "--update-expectations", "--no-report", "--hypothesis-profile", "ci")
    assert update.returncode == 0 and "wrote the expectations of 1 claims for minilm at layer 1" in update.stdout, update.stdout[-3000:]
    assert set(tomllib.loads(expectations.read_text())["minilm"]) == {"layer-1"}
    report = tmp_path / "r.html"
    later = hostile._pytest(*common, "--report", str(report), "--hypothesis-profile", "ci")  # at the note's layer, 2
    assert later.returncode == 0 and "3 passed" in later.stdout, later.stdout[-3000:]  # minilm refutes C3 at 2: a finding
    items = [i for c in json.loads(report.with_suffix(".json").read_text())["claims"] for i in c["items"]]
    assert {i["status"] for i in items} == {"finding: refuted"} and all("only [minilm.layer-1]" in i["expectation_reason"] for i in items)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("layer-2", "[minilm.layer-2] is block 2, the note's layer, whose expectations are [minilm]'s own: move its entries into [minilm]"),
        ("layer-02", "[minilm.layer-02] is block 2, the note's layer, whose expectations are [minilm]'s own"),
        ("layer-007", "[minilm.layer-007] would never be read: write the layer without leading zeros, [minilm.layer-7]"),
    ],
)
def test_a_section_for_the_note_layer_or_a_padded_layer_is_refused(suite, tmp_path, key, message):
    path = tmp_path / "e.toml"
    path.write_text((ROOT / "harness" / "note" / "expectations.toml").read_text() + f'\n[minilm.{key}]\nC2 = "refuted"\n')
    before = hostile._snapshot(tmp_path)
    hostile._one_line(suite(*NO_MODEL, "--expectations", str(path), "--no-report"), 4, message)
    assert hostile._snapshot(tmp_path) == before


# ---------------------------------------------------------------------------------------------
# Row 8: merging runs made with different settings


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"layer": 3}, "were run with different layer (2 and 3)"),
        ({"seed": 7}, "were run with different seed (0 and 7)"),
        ({"layers": "0-5"}, "were run with different layers (None and '0-5')"),
        ({"dtype": "bfloat16"}, "were run with different dtype ('float32' and 'bfloat16')"),
        ({"prompt_texts": ["One.", "Two."]}, "were run with different prompts (3 and 2 prompts)"),
        ({"prompt_texts": ["One.", "Two.", "Four."]}, "were run with different prompts (prompt 3 is 'Three.' and 'Four.')"),
    ],
)
def test_merge_refuses_reports_measured_with_different_settings(tmp_path, capsys, change, message):
    (tmp_path / "a.json").write_text(json.dumps(_document("a")))
    (tmp_path / "b.json").write_text(json.dumps(_document("b", **change)))
    before = hostile._snapshot(tmp_path)
    code = merge_main(["merge", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "-o", str(tmp_path / "m.html")])
    _one_line_exit(code, 2, capsys.readouterr().err, f"{tmp_path / 'a.json'} and {tmp_path / 'b.json'} {message}")
    assert hostile._snapshot(tmp_path) == before


def test_merge_takes_reports_that_differ_only_in_where_they_ran(tmp_path, capsys):
    (tmp_path / "a.json").write_text(json.dumps(_document("a")))
    machine = {"device": "cuda:1", "memory_budget_mb": 8192, "factor_batch": None, "prompts": "/scratch/p.txt"}
    (tmp_path / "b.json").write_text(json.dumps(_document("b", **machine)))
    assert merge_main(["merge", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "-o", str(tmp_path / "m.html")]) == 0
    merged = json.loads((tmp_path / "m.json").read_text())
    assert [m["model"] for m in merged["run"]["models"]] == ["a", "b"] and merged["run"]["settings"]["layer"] == 2


# ---------------------------------------------------------------------------------------------
# Row 13: malformed JSON, validated against one schema before use


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


MALFORMED = {
    "deep": lambda d: _deep(100_000),
    "deep-inside": lambda d: json.dumps(d).replace('"evidence": {}', '"evidence": {"x": ' + _deep(900) + "}", 1),
    "claim-without-items": lambda d: _set(d, lambda x: x["claims"][1].pop("items")),
    "item-without-status": lambda d: _set(d, lambda x: x["claims"][1]["items"][0].pop("status")),
    "models-is-text": lambda d: _set(d, lambda x: x["run"].__setitem__("models", "minilm")),
    "bogus-status": lambda d: _set(d, lambda x: x["claims"][1]["items"][0].__setitem__("status", "bogus")),
    "items-is-object": lambda d: _set(d, lambda x: x["claims"][1].__setitem__("items", {})),
}
MESSAGES = {
    "deep": "nests too deeply to be read",
    "deep-inside": "nests deeper than 64 levels",
    "claim-without-items": "is not a claim report: claims[1].items is missing",
    "item-without-status": "claims[1].items[0].status is missing",
    "models-is-text": "run.models is 'minilm'; expected a list",
    "bogus-status": "claims[1].items[0].status is 'bogus'; allowed: error, finding: holds",
    "items-is-object": "claims[1].items is {}; expected a list",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_merge_refuses_malformed_json_in_one_line(tmp_path, capsys, case):
    (tmp_path / "in.json").write_text(MALFORMED[case](_document("m")))
    before = hostile._snapshot(tmp_path)
    code = cli.main(["report", "merge", str(tmp_path / "in.json"), "-o", str(tmp_path / "out.html")])
    _one_line_exit(code, 2, capsys.readouterr().err, MESSAGES[case])
    assert hostile._snapshot(tmp_path) == before


def _json() -> st.SearchStrategy:
    leaves = st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False) | st.sampled_from(["", "holds", "bogus", "inf"])
    nested = lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)  # noqa: E731
    return st.recursive(leaves, nested, max_leaves=8)


KEYS = ["format", "run", "claims", "claim", "items", "status", "nodeid", "models", "model", "layer", "session", "x", "ci95", "margin"]


def _paths(value: object, path: tuple = ()) -> list[tuple]:
    """Every place in a JSON document, as the keys and indices that lead there (the document itself: ())."""
    inner = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    return [path, *(p for key, v in inner for p in _paths(v, (*path, key)))]


FUZZED = _document("m", statuses=STATUSES[:3])


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(_paths(FUZZED)), value=_json(), drop=st.booleans())
def test_fuzzed_merge_input_is_one_line_and_exit_2_or_a_report(path, value, drop, tmp_path_factory, capsys):
    """Any value put in any place of a valid report (or a key taken out): a merged report, or one line and exit 2."""
    folder = tmp_path_factory.mktemp("merge")
    doc = copy.deepcopy(FUZZED)
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if not path:
        doc = value
    elif drop and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    (folder / "in.json").write_text(json.dumps(doc))
    code = cli.main(["report", "merge", str(folder / "in.json"), "-o", str(folder / "out.html")])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    if code == 0:
        assert (folder / "out.html").read_text().startswith("<!DOCTYPE html>") and json.loads((folder / "out.json").read_text())
    else:
        assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("report merge: "), err
        assert not (folder / "out.html").exists() and not (folder / "out.json").exists()


# ---------------------------------------------------------------------------------------------
# Row 14: Ctrl-C, one line and exit 130


def test_ctrl_c_in_report_merge_is_one_line_and_keeps_the_old_pair(tmp_path, monkeypatch, capsys):
    (tmp_path / "a.json").write_text(json.dumps(_document("m")))
    (tmp_path / "out.html").write_text("old page")
    (tmp_path / "out.json").write_text('{"old": true}')
    before = hostile._snapshot(tmp_path)

    def interrupted(doc: dict) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(write, "render_html", interrupted)
    code = cli.main(["report", "merge", str(tmp_path / "a.json"), "-o", str(tmp_path / "out.html")])
    _one_line_exit(code, 130, capsys.readouterr().err, "report merge: interrupted (Ctrl-C) before")
    assert hostile._snapshot(tmp_path) == before


def test_ctrl_c_in_profile_is_one_line_and_exit_130(monkeypatch, capsys, tmp_path):
    def interrupted(settings: object) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "load_subject_for", interrupted)
    code = cli.main(["profile", "--model", "minilm", "--prompt", "The cat sat."])
    out, err = capsys.readouterr()
    _one_line_exit(code, 130, err, "interrupted (Ctrl-C)")
    assert out == ""


SIGINT_WHILE_RENDERING = """
import os, signal
import harness.report.write as write

real = write.render_html

def pressed(doc):
    for _ in range({times}):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the page renders, after every test finished
    return real(doc)

write.render_html = pressed


def pytest_unconfigure(config):
    write.render_html = real  # pytester runs in this process: leave the module as it was
"""


@pytest.mark.parametrize(("times", "message"), [(1, "it was finished first"), (2, "kept")], ids=["once", "twice"])
def test_ctrl_c_while_the_report_renders_finishes_it_or_keeps_the_earlier_one(pytester, times, message):
    fake_suite(pytester)
    pytester.runpytest("claims", "-p", "no:cacheprovider")  # an earlier report
    earlier = hostile._snapshot(pytester.path / "reports")
    (pytester.path / "ctrl_c.py").write_text(SIGINT_WHILE_RENDERING.format(times=times))
    pytester.syspathinsert()
    result = pytester.runpytest("claims", "-p", "no:cacheprovider", "-p", "ctrl_c", no_reraise_ctrlc=True)
    text = result.stdout.str() + result.stderr.str()
    assert result.ret == 130 and "Traceback" not in text and "KeyboardInterrupt" not in text, text[-3000:]
    assert "claim report: Ctrl-C: finishing the report" in text
    after = hostile._snapshot(pytester.path / "reports")
    if times == 1:  # this run's pair, complete
        assert after != earlier and json.loads(after["claims.json"][0])["session"]["exitstatus"] == 1
        result.stdout.fnmatch_lines(["claim report: *claims.html (numbers: claims.json); interrupted (Ctrl-C) *; it was finished first"])
    else:
        assert after == earlier
        result.stdout.fnmatch_lines(["claim report NOT written: interrupted (Ctrl-C) while writing the report: kept *claims.html*"])


# ---------------------------------------------------------------------------------------------
# Rows 10 and 20: a three-model layer map: figures sized by their content, each row names its block


def test_a_three_model_layer_map_draws_no_collapsed_figure_and_labels_each_row_with_its_block(layer_map_doc):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "axes sizes collapsed to zero" included
        html = render_html(layer_map_doc)
    assert "plot failed" not in html  # a warning made an error is shown in place of its plot
    svgs = re.findall(r"<svg .*?</svg>", html, re.S)
    assert len(svgs) == 7  # the overview and C0–C5's (minilm has no LM head: no C6 figure)
    for svg in svgs:
        name, height = re.search(r'aria-label="([^"]*)"', svg).group(1), float(re.search(r'viewBox="0 0 [^ ]+ ([^"]+)"', svg).group(1))
        areas = [float(h) for h in re.findall(r'<clipPath id="[^"]*">\n<rect x="[^"]*" y="[^"]*" width="[^"]*" height="([^"]*)"', svg)]
        assert areas and min(areas) > 60, (name, areas)  # points: every plot area keeps its height
        ys = [float(y) for y in re.findall(r'<text [^>]*\by="([-0-9.]+)"', svg)]
        assert all(0 <= y <= height for y in ys), (name, height, min(ys), max(ys))  # no legend entry drawn off the figure
    section = html[html.index('id="claim-C1"') : html.index('id="claim-C2"')]
    labels = re.findall(r'<tr data-nodeid="[^"]*" data-status="[^"]*" title="[^"]*">\n<td>([^<]*)</td>', section)
    assert len(labels) == len(set(labels)) == 3 * 6 * 3  # models × layers × (two factors and the property test)
    assert "minilm-b, block 4, factor 0.5" in labels and "minilm-c, block 0, hypothesis" in labels


# ---------------------------------------------------------------------------------------------
# A layer map over three models


def layer_map_document(outcomes: list[ClaimOutcome], info: dict, models=("minilm", "minilm-b", "minilm-c"), layers=range(6)) -> dict:
    """A layer map over several models, from one model's measured outcomes at the note's layer, relabelled.

    Each copy keeps the measured evidence (so every figure has its real data and size) and is given its
    model and layer, its profile's too; items off the judged layer are findings, as the suite makes them.
    """
    judged, items = info["layer"], []
    for model in models:
        for layer in layers:
            for o in outcomes:
                if layer != judged and not CLAIMS[o.claim].layer_map:
                    continue
                expected = o.expected if layer == judged else FINDING
                evidence = dict(o.evidence)
                if isinstance(evidence.get("profile"), dict):
                    evidence["profile"] = {**evidence["profile"], "model": model, "layer": layer}
                name, _, param = o.nodeid.partition("[")
                nodeid = f"{name}[{model}-L{layer}{'-' + param.rstrip(']') if param else ''}]"
                copied = dataclasses.replace(o, model=model, layer=layer, nodeid=nodeid, expected=expected,
                                             status=status_of(o.verdict, expected), evidence=evidence)  # fmt: skip
                items.append(ItemResult(nodeid, outcome=copied, pytest_outcome="passed"))
    described = {k: v for k, v in info.items() if k in ("revision", "architecture", "blocks", "device", "dtype")}
    run = {
        **info,
        "model": ", ".join(models),
        "models": [{**described, "model": each, "layer": judged, "layers": list(layers)} for each in models],
    }
    return build_document(items, run, {"exitstatus": 0})


@pytest.fixture(scope="module")
def layer_map_doc() -> dict:
    from harness.report.sample import sample_run

    return layer_map_document(*sample_run("minilm"))
