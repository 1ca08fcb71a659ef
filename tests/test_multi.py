"""Several models in one session, the layer map, and `report merge`: the real suite on minilm and random-gpt2.

Runs `pytest claims/` on a three-prompt corpus with `-k` limited to a few claims (the ci Hypothesis
profile), so each run takes seconds. The numbers themselves are checked elsewhere; here: which tests
run, with which ids, what they are held to, that a model is freed before the next loads, that one
report covers every model, and that merging single-model reports gives the two-model run's document.
"""

from __future__ import annotations

import gc
import json
import os
import re
import subprocess
import sys
import weakref
from pathlib import Path

import pytest

from harness.cli import main as cli_main
from harness.errors import InputError
from harness.judge.expectations import load_expectations
from harness.judge.outcome import FINDING, FINDING_HOLDS, FINDING_REFUTED, STATUSES, status_of
from harness.report.merge import main as merge_main
from harness.report.merge import merge_documents
from harness.report.outcomes import FORMAT, assemble
from harness.settings import layers_of, parse_layers

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parent.parent
PROMPTS = [
    "The old lighthouse keeper climbed the stairs every evening.",
    "Rain fell on the quiet harbour town all night.",
    "A small dog ran across the wide green field today.",
]
FAST = ["-p", "no:cacheprovider", "--hypothesis-profile", "ci"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "prompts.txt"
    path.write_text("\n".join(PROMPTS) + "\n", encoding="utf-8")
    return path


def _pytest(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "HYPOTHESIS_"))}
    clean.update({"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), **(env or {})})
    cmd = [sys.executable, "-m", "pytest", "claims/", *args, *FAST]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, env=clean)


def _items(doc: dict) -> list[dict]:
    return [i for c in doc["claims"] for i in c["items"]]


class ModelWatch:
    """A pytest plugin: at each model's first test, is the previous model's Subject gone?"""

    def __init__(self) -> None:
        from harness.model import Subject

        gc.collect()
        self.before = {id(o) for o in gc.get_objects() if type(o) is Subject}  # other tests' subjects in this process
        self.previous: tuple[str, weakref.ref] | None = None
        self.seen: list[tuple[str, str, bool, int]] = []  # (previous model, new model, previous freed, Subjects alive)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item):
        run = item.funcargs["harness_model"]
        if self.previous is None or self.previous[0] != run.model:
            if self.previous is not None:
                from harness.model import Subject

                gc.collect()
                alive = sum(type(o) is Subject and id(o) not in self.before for o in gc.get_objects())
                self.seen.append((self.previous[0], run.model, self.previous[1]() is None, alive))
            self.previous = (run.model, weakref.ref(run.subject))
        return (yield)


def test_two_models_one_report_each_freed_before_the_next_and_expectations_per_model(pytester, corpus, tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith(("HARNESS_", "HYPOTHESIS_")):
            monkeypatch.delenv(name)
    text = (ROOT / "harness" / "note" / "expectations.toml").read_text(encoding="utf-8")
    without = tmp_path / "expectations.toml"  # random-gpt2 has no section: its empirical claims are findings
    without.write_text(text[: text.index("[random-gpt2]")], encoding="utf-8")
    report = tmp_path / "two.html"
    watch = ModelWatch()  # in this process other tests may hold subjects of their own: those are not counted
    result = pytester.runpytest_inprocess(
        str(ROOT / "claims"), "--rootdir", str(ROOT), *FAST, "--model", "minilm", "--model", "random-gpt2",
        "-k", "C1 or C2 or C5", "--prompts", str(corpus), "--expectations", str(without), "--update-expectations",
        "--report", str(report), "-v", plugins=[watch],
    )  # fmt: skip
    out = result.stdout.str()
    assert result.ret == 0, out[-3000:]
    assert watch.seen == [("minilm", "random-gpt2", True, 1)]  # minilm freed before random-gpt2's first test; one Subject alive
    assert "harness: models minilm, random-gpt2" in out
    doc = json.loads(report.with_suffix(".json").read_text(encoding="utf-8"))
    assert [m["model"] for m in doc["run"]["models"]] == ["minilm", "random-gpt2"]
    assert [m["blocks"] for m in doc["run"]["models"]] == [6, 12]
    items = _items(doc)
    assert len(items) == 18 and {i["model"] for i in items} == {"minilm", "random-gpt2"}
    assert all(re.search(rf"\[{re.escape(i['model'])}(-|\])", i["nodeid"]) for i in items)
    assert "test_C5_first_token_dominates[random-gpt2-0.5]" in out and "test_C1_no_change_before_layer[minilm-1.5]" in out
    # minilm's section judges its C5; random-gpt2's C5 is a finding (shown, passing), its structural C1/C2 hold
    status = {(i["model"], i["nodeid"].split("::")[1].split("[")[0]): i["status"] for i in items}
    assert status[("minilm", "test_C5_first_token_dominates")] == "refuted as expected"
    assert status[("random-gpt2", "test_C5_first_token_dominates")] in (FINDING_HOLDS, FINDING_REFUTED)
    assert status[("random-gpt2", "test_C1_no_change_before_layer")] == "holds"
    cells = {(c["model"], c["claim"]): c for c in doc["matrix"]["cells"]}
    assert doc["matrix"]["models"] == ["minilm", "random-gpt2"] and len(doc["matrix"]["cells"]) == 2 * len(doc["matrix"]["claims"])
    assert cells[("minilm", "C5")]["status"] == "refuted as expected" and cells[("minilm", "C5")]["needs"] == ">="
    assert cells[("minilm", "C0")]["status"] == "not run" and cells[("minilm", "C0")]["nodeid"] is None
    assert doc["session"]["counts"]["fragile"] == sum(i["fragile"] is True for i in items)
    assert "layer_map" not in doc
    # --update-expectations wrote a section for each model, and kept minilm's hand-written reasons
    import tomllib

    table = tomllib.loads(without.read_text(encoding="utf-8"))
    assert set(table["random-gpt2"]) == {"C1", "C2", "C5"} and table["random-gpt2"]["C5"]["reason"].startswith("measured: ")
    assert table["minilm"]["C5"] == tomllib.loads(text)["minilm"]["C5"]


def test_merging_single_model_reports_gives_the_two_model_runs_matrix_and_items(corpus, tmp_path):
    args = ["-k", "C1 or C3 or C5", "--prompts", str(corpus)]
    for name, models in (("both", ["minilm", "random-gpt2"]), ("minilm", ["minilm"]), ("random", ["random-gpt2"])):
        run = _pytest(*args, *(a for m in models for a in ("--model", m)), "--report", str(tmp_path / f"{name}.html"))
        assert run.returncode == 0, run.stdout[-3000:]
    merge = ["report", "merge", str(tmp_path / "minilm.json"), str(tmp_path / "random.json"), "-o", str(tmp_path / "merged.html")]
    code = cli_main(merge)  # the user's path: python -m harness report merge ...
    assert code == 0 and (tmp_path / "merged.html").read_text(encoding="utf-8").startswith("<!")
    both, merged = (json.loads((tmp_path / f"{n}.json").read_text(encoding="utf-8")) for n in ("both", "merged"))
    assert merged["matrix"] == both["matrix"]
    assert [c["items"] for c in merged["claims"]] == [c["items"] for c in both["claims"]]
    assert [c["status"] for c in merged["claims"]] == [c["status"] for c in both["claims"]]
    assert merged["session"]["counts"] == both["session"]["counts"]
    assert [m["model"] for m in merged["run"]["models"]] == ["minilm", "random-gpt2"]


def test_merge_refuses_what_is_not_a_matching_claim_report_in_one_line(tmp_path, capsys):
    good = {"format": FORMAT, "run": {"model": "m", "layer": 2}, "claims": [], "session": {}}
    (tmp_path / "a.json").write_text(json.dumps(good))
    (tmp_path / "old.json").write_text(json.dumps({**good, "format": "claims-report/0", "run": {"model": "n"}}))
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "text.json").write_text("not json")
    for other, message in (
        ("old.json", "old.json has format 'claims-report/0'"),
        ("list.json", "list.json is not a claim report"),
        ("text.json", "text.json' is not JSON"),
        ("a.json", "both report model 'm'"),
        ("missing.json", "missing.json' cannot be read"),
    ):
        code = merge_main(["merge", str(tmp_path / "a.json"), str(tmp_path / other), "-o", str(tmp_path / "out.html")])
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out.html").exists() and not (tmp_path / "out.json").exists()
    before = (tmp_path / "a.json").read_bytes()
    assert merge_main(["merge", str(tmp_path / "a.json"), "-o", str(tmp_path / "a.html")]) == 2  # its twin is the input
    assert "would write its JSON twin" in (err := capsys.readouterr().err) and "over the input" in err
    assert (tmp_path / "a.json").read_bytes() == before and not (tmp_path / "a.html").exists()
    with pytest.raises(InputError, match="at least one"):
        merge_documents([])


def test_a_model_that_cannot_load_errors_its_own_tests_while_the_others_run(corpus, tmp_path):
    report = tmp_path / "r.html"
    run = _pytest("--model", "/no/such/model-dir", "--model", "minilm", "-k", "C1", "--prompts", str(corpus), "--report", str(report), "-v")
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-2000:]
    assert re.search(r"3 passed, \d+ deselected, 3 errors", run.stdout) and "Traceback" not in run.stdout
    assert "cannot run the claims on /no/such/model-dir: Cannot load model '/no/such/model-dir'" in run.stdout
    doc = json.loads(report.with_suffix(".json").read_text(encoding="utf-8"))
    failed, loaded = doc["run"]["models"]
    assert "is not a directory" in failed["error"] and loaded["model"] == "minilm" and "error" not in loaded
    by_model = {m: {i["status"] for i in _items(doc) if i["model"] == m} for m in ("/no/such/model-dir", "minilm")}
    assert by_model == {"/no/such/model-dir": {"error"}, "minilm": {"holds"}}


def test_one_model_that_cannot_load_still_stops_the_session_with_exit_4(tmp_path):
    run = _pytest("--model", "/no/such/model-dir", "--no-report")
    assert run.returncode == 4 and "cannot run the claims: Cannot load model" in run.stderr


def test_under_xdist_each_model_runs_on_one_worker_and_one_report_covers_both(corpus, tmp_path):
    report = tmp_path / "x.html"
    run = _pytest(
        "--model", "minilm", "--model", "random-gpt2", "-k", "C2", "--prompts", str(corpus), "-n", "2", "-v", "--report", str(report)
    )
    assert run.returncode == 0, run.stdout[-3000:]
    workers: dict[str, set[str]] = {}
    for worker, model in re.findall(r"\[(gw\d)\] .*?PASSED claims/\S+\[(minilm|random-gpt2)", run.stdout):
        workers.setdefault(model, set()).add(worker)
    assert len(workers["minilm"]) == 1 and len(workers["random-gpt2"]) == 1 and workers["minilm"] != workers["random-gpt2"], run.stdout
    doc = json.loads(report.with_suffix(".json").read_text(encoding="utf-8"))
    assert [m["model"] for m in doc["run"]["models"]] == ["minilm", "random-gpt2"]
    assert [m["blocks"] for m in doc["run"]["models"]] == [6, 12]  # each worker's model info reached the controller
    assert len(_items(doc)) == 6 and all(i["status"] == "holds" for i in _items(doc))


def test_the_layer_map_gives_each_layers_single_run_verdicts(corpus, tmp_path):
    base = ["--model", "minilm", "-k", "C2 or C3", "--prompts", str(corpus)]
    mapped = _pytest(*base, "--layers", "1-2", "--report", str(tmp_path / "map.html"))
    assert mapped.returncode == 0, mapped.stdout[-3000:]
    doc = json.loads((tmp_path / "map.json").read_text(encoding="utf-8"))
    singles = {}
    for layer in (1, 2):
        _pytest(*base, "--layer", str(layer), "--report", str(tmp_path / f"l{layer}.html"))  # held to [minilm]: may fail
        singles[layer] = json.loads((tmp_path / f"l{layer}.json").read_text(encoding="utf-8"))
    for item in _items(doc):
        name = re.sub(r"-L\d", "", item["nodeid"])
        single = next(i for i in _items(singles[item["layer"]]) if i["nodeid"] == name)
        assert (item["verdict"], item["margin"], item["statistic"]) == (single["verdict"], single["margin"], single["statistic"]), name
        if item["layer"] == 2:  # the judged layer: held to [minilm], as the single run
            assert item["status"] == single["status"]
        else:  # minilm has no [minilm.layer-1]: a finding, never a failure
            assert item["status"] == status_of(item["verdict"], FINDING) and item["expected"] == FINDING
    c3 = next(c for c in doc["claims"] if c["claim"] == "C3")
    assert {i["layer"] for i in c3["items"]} == {1, 2}
    cell = next(c for c in doc["matrix"]["cells"] if c["claim"] == "C3")
    assert cell["status"] == "refuted as expected" and "[minilm-L2" in cell["nodeid"]
    lmap = doc["layer_map"]["minilm"]
    assert lmap["layers"] == [1, 2] and lmap["claims"] == ["C1", "C2", "C3", "C4", "C5"]
    row = lmap["claims"].index("C3")
    assert lmap["status"][row][1] == "refuted as expected" and lmap["status"][row][0].startswith("finding: ")
    assert lmap["margin"][0] == [None, None]  # C1 was not run (-k)
    assert lmap["margin"][row][0] == min(i["margin"] for i in c3["items"] if i["layer"] == 1 and i["status"] == lmap["status"][row][0])


# ---------------------------------------------------------------------------------------------
# The pure parts


@pytest.mark.parametrize(
    ("text", "blocks", "layers"),
    [("all", 4, [0, 1, 2, 3]), ("0-2", 6, [0, 1, 2]), ("2,4", 6, [2, 4]), (" 0-1 , 5 ", 6, [0, 1, 5]), ("3", 6, [3])],
)
def test_layer_lists(text, blocks, layers):
    assert layers_of(parse_layers(text), blocks) == layers


@pytest.mark.parametrize(
    ("text", "message"), [("", "not a layer list"), ("a-b", "not a layer list"), ("5-2", "backwards"), ("1,,2", "not a layer list")]
)
def test_bad_layer_lists_say_what_is_allowed(text, message):
    with pytest.raises(ValueError, match=message):
        parse_layers(text)


def test_a_layer_beyond_the_model_names_it():
    with pytest.raises(InputError, match="block 6, beyond the model's 6 blocks"):
        layers_of("0-6", 6)


def test_bad_layers_and_a_model_given_twice_stop_the_session(tmp_path):
    run = _pytest("--model", "minilm", "--layers", "1-x", "--no-report")
    assert run.returncode == 4 and "--layers '1-x' is not a layer list" in run.stderr
    run = _pytest("--model", "minilm", "--model", "minilm", "--no-report")
    assert run.returncode == 4 and "--model names 'minilm' twice" in run.stderr


def test_findings_rank_below_every_judged_status_and_a_model_without_a_section_is_held_to_structure(tmp_path):
    assert STATUSES.index(FINDING_REFUTED) > STATUSES.index("holds") and STATUSES.index(FINDING_HOLDS) < STATUSES.index("not applicable")
    path = tmp_path / "e.toml"
    path.write_text('[m]\nC3 = "refuted"\n\n[m.layer-4]\nC4 = "refuted"\n')
    other = load_expectations(path, "unknown-model")
    assert {c: e.verdict for c, e in other.items() if c in ("C0", "C1", "C2")} == {"C0": "holds", "C1": "holds", "C2": "holds"}
    assert {other[c].verdict for c in ("C3", "C4", "C5")} == {FINDING}
    assert {e.verdict for e in load_expectations(path, "m", 3, judged=2).values()} == {FINDING}  # a map layer without a section
    at4 = load_expectations(path, "m", 4, judged=2)  # the model names layer 4: judged, falling back to [m]
    assert (at4["C4"].verdict, at4["C3"].verdict, at4["C1"].verdict) == ("refuted", "refuted", "holds")
    assert load_expectations(path, "m", 2, judged=2)["C3"].verdict == "refuted"


def test_the_matrix_takes_the_most_serious_item_then_the_smallest_margin():
    def item(model, status, margin, layer=2, n=0):
        return {"nodeid": f"x::test_C3_a[{model}-{n}]", "model": model, "layer": layer, "status": status, "margin": margin,
                "statistic": margin, "threshold": 1.0, "ci95": None, "fragile": margin < 0.1}  # fmt: skip

    run = {"model": "a, b", "layer": 2, "models": [{"model": "a", "layer": 2}, {"model": "b", "layer": 2, "layers": [1, 2]}]}
    items = [
        item("a", "holds", 0.5, n=1), item("a", "holds", 0.05, n=2), item("b", "refuted", 0.3, n=3), item("b", "refuted", 0.2, n=4),
        item("b", "unexpected pass", -1.0, layer=1, n=5), item("b", "finding: refuted", 0.7, layer=1, n=6),
    ]  # fmt: skip
    doc = assemble([("C3", i) for i in items], run, {})
    cells = {(c["model"], c["claim"]): c for c in doc["matrix"]["cells"]}
    assert cells[("a", "C3")]["nodeid"].endswith("-2]") and cells[("a", "C3")]["status"] == "holds"
    assert cells[("b", "C3")]["nodeid"].endswith("-4]") and cells[("b", "C3")]["statistic"] == 0.2  # layer 1 is not judged
    assert doc["session"]["counts"]["fragile"] == 2 and "a" not in doc["layer_map"]
    row = doc["layer_map"]["b"]["claims"].index("C3")
    assert doc["layer_map"]["b"]["status"][row] == ["unexpected pass", "refuted"] and doc["layer_map"]["b"]["margin"][row] == [-1.0, 0.2]
