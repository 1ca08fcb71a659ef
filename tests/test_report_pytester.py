"""The report written by pytest runs (pytester): the real claims suite, and small fake suites for the edge cases.

Real: `pytest /work/main/claims --model random-gpt2|minilm` on three prompts (one of them an XSS
string), serially and under `-n 2`; the page is checked against its JSON twin.
Fake: claim tests that attach hand-made outcomes, for interruption, errors, values that cannot
travel, --report / --no-report, and sessions that run no claims.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.note import CLAIMS
from harness.report.render import fmt
from tests.test_report import XSS, Tree, parse

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ["The old dog slept soundly.", XSS, "Can you explain why the sky looks red at sunset?"]

pytest_plugins = ["pytester"]


def run_claims(pytester: pytest.Pytester, model: str, *extra: str) -> tuple[pytest.RunResult, dict, str]:
    """Run the real suite on `model` in a subprocess; return the result, the JSON and the HTML."""
    prompts = pytester.path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n", encoding="utf-8")
    report = pytester.path / "out" / "claims.html"
    result = pytester.runpytest_subprocess(
        str(ROOT / "claims"),
        "--rootdir",
        str(ROOT),
        "-p",
        "harness.report.collect",
        "--model",
        model,
        "--device",
        "cpu",
        "--prompts",
        str(prompts),
        "--hypothesis-profile",
        "ci",
        "--report",
        str(report),
        "-p",
        "no:cacheprovider",
        *extra,
    )
    assert report.is_file(), result.stdout.str()[-3000:]
    return result, json.loads(report.with_suffix(".json").read_text()), report.read_text()


def check_page_matches_json(doc: dict, html: str) -> None:
    root = parse(html)
    sections = {s.attrs["data-claim"]: s for s in root.find_all("section", class_="claim")}
    assert list(sections) == list(CLAIMS)
    for claim in doc["claims"]:
        section = sections[claim["claim"]]
        assert section.attrs["data-status"] == claim["status"]
        rows = [r for r in section.find_all("tr") if "data-nodeid" in r.attrs]
        assert [r.attrs["data-nodeid"] for r in rows] == [i["nodeid"] for i in claim["items"]]
        for row, item in zip(rows, claim["items"], strict=True):
            assert row.attrs["data-status"] == item["status"]
            assert row.find_all("td", class_="margin")[0].text == fmt(item.get("margin"))
        for table in section.find_all("table", class_="evidence"):
            item = next(i for i in claim["items"] if i["nodeid"] == table.attrs["data-nodeid"])
            for td in table.find_all("td"):
                if "data-key" in td.attrs and td.attrs["data-key"] in item["evidence"]:
                    assert td.text == fmt(item["evidence"][td.attrs["data-key"]])
        assert all(f.find_all("svg") for f in section.find_all("figure"))


@pytest.mark.slow
@pytest.mark.parametrize("model", ["random-gpt2", "minilm"])
def test_real_suite_writes_a_matching_report(pytester, model):
    result, doc, html = run_claims(pytester, model)
    assert doc["run"]["model"] == model and doc["run"]["revision"]
    assert doc["session"]["exitstatus"] == result.ret
    items = [i for c in doc["claims"] for i in c["items"]]
    assert len(items) == 3 * len(CLAIMS) and all(i["status"] != "not run" for i in items)  # 2 note factors + 1 property test each
    outcomes = result.parseoutcomes()
    assert len([i for i in items if i["pytest_outcome"] == "passed"]) == outcomes.get("passed", 0)
    check_page_matches_json(doc, html)
    tree = Tree(html)
    assert "script" not in tree.tags
    assert XSS in [li.text for li in tree.root.find_all("ol", class_="prompts")[0].find_all("li")]
    # the suite measures each factor alone; the page draws them together and tabulates each factor's own numbers
    c1 = next(s for s in tree.root.find_all("section", class_="claim") if s.attrs["data-claim"] == "C1")
    captions = [f.text for f in c1.find_all("figcaption") if f.text.startswith("Δ against site")]
    assert len(captions) == 1 and "factor 0.5, factor 1.5" in captions[0]
    table = c1.find_all("table", class_="numbers")[0]
    header = [th.text for th in table.find_all("th")]
    cells = [[td.text for td in tr.find_all("td")] for tr in table.find_all("tr")[1:]]
    for item in next(c for c in doc["claims"] if c["claim"] == "C1")["items"]:
        prof = item["evidence"].get("profile")
        if prof:
            column = header.index(f"Δ ({fmt(item['factor'])})")
            assert [row[column] for row in cells] == [fmt(v) for v in prof["delta"][0]]
    if model == "random-gpt2":  # trained-weight claims do not apply to random weights
        assert {c["claim"]: c["status"] for c in doc["claims"]}["C5"] == "not applicable"


def test_real_suite_with_a_model_that_cannot_load_still_reports(pytester):
    report = pytester.path / "out" / "claims.html"
    result = pytester.runpytest_subprocess(
        str(ROOT / "claims"), "--rootdir", str(ROOT), "-p", "harness.report.collect",
        "--model", str(pytester.path / "no-such-model"), "--report", str(report), "-p", "no:cacheprovider",
    )  # fmt: skip
    assert result.ret != pytest.ExitCode.OK
    doc = json.loads(report.with_suffix(".json").read_text())
    assert set(statuses(doc).values()) == {"not run"}
    assert "before running any test" in doc["session"]["note"]
    assert "before running any test" in report.read_text()


@pytest.mark.slow
def test_real_suite_under_xdist_writes_one_complete_report(pytester):
    result, doc, html = run_claims(pytester, "minilm", "-n", "2")
    assert sorted(p.name for p in (pytester.path / "out").iterdir()) == ["claims.html", "claims.json"]
    items = [i for c in doc["claims"] for i in c["items"]]
    not_run = [i["nodeid"] for i in items if i["status"] == "not run"]
    assert len(items) == 3 * len(CLAIMS) and not not_run, not_run
    assert doc["session"]["exitstatus"] == result.ret
    check_page_matches_json(doc, html)
    # the same results, serially: byte-identical plots and numbers; only the header's date and command differ
    (pytester.path / "out" / "claims.html").rename(pytester.path / "xdist.html")
    _, serial_doc, serial_html = run_claims(pytester, "minilm")
    assert without_date_and_command(serial_html) == without_date_and_command((pytester.path / "xdist.html").read_text())
    assert {k: v for k, v in serial_doc.items() if k != "run"} == {k: v for k, v in doc.items() if k != "run"}


def without_date_and_command(html: str) -> str:
    html = re.sub(r'<dd data-key="date">.*?</dd>', "", html, flags=re.S)
    return re.sub(r'<dd data-key="command">.*?</dd>', "", html, flags=re.S)


# ---------------------------------------------------------------------------------------------
# Fake suites: the plugin alone, with hand-made outcomes.

FAKE_CONFTEST = """
import json
import pytest

pytest_plugins = ["harness.report.collect"]
VERDICT = {"holds": "holds", "refuted": "refuted", "refuted as expected": "refuted", "not applicable": "not-applicable"}

def pytest_claim_report_run_info(config):
    return {"model": "fake", "revision": "r1", "device": "cpu", "dtype": "float32", "command": "pytest fake"}

@pytest.fixture
def record(request):
    def rec(claim, status="holds", margin=0.5):
        outcome = {"claim": claim, "verdict": VERDICT[status], "expected": "holds", "status": status, "margin": margin,
                   "margin_text": f"margin {margin}", "reason": "<b>because</b>", "evidence": {"ratio": [1.5, 2.5]}}
        request.node.user_properties.append(("claim_outcome", json.dumps(outcome)))
    return rec

@pytest.fixture
def broken():
    raise RuntimeError("the subject did not load")
"""

FAKE_TESTS = """
import pytest

def test_C1_holds(record):
    record("C1")

def test_C2_refuted(record):
    record("C2", status="refuted", margin=-0.25)
    pytest.fail("C2 refuted on fake")

def test_C3_setup_error(broken):
    pass

def test_C4_not_applicable(record):
    record("C4", status="not applicable", margin=0.0)
    pytest.skip("C4 is not applicable to fake")
"""


def fake_suite(pytester: pytest.Pytester, extra_tests: str = "") -> None:
    """The report plugin alone: the installed suite plugin (a pytest11 entry point) is switched off."""
    pytester.makeini("[pytest]\naddopts = -p no:harness.suite.plugin\n")
    pytester.makeconftest(FAKE_CONFTEST)
    claims = pytester.mkdir("claims")
    (claims / "test_fake.py").write_text(FAKE_TESTS + extra_tests)
    pytester.mkdir("tests")
    (pytester.path / "tests" / "test_plain.py").write_text("def test_plain():\n    pass\n")


def load(pytester: pytest.Pytester, name: str = "reports/claims") -> tuple[dict, str]:
    base = pytester.path / name
    return json.loads(base.with_suffix(".json").read_text()), base.with_suffix(".html").read_text()


def statuses(doc: dict) -> dict[str, str]:
    return {c["claim"]: c["status"] for c in doc["claims"]}


def test_errors_and_skips_are_reported_with_what_ran(pytester):
    fake_suite(pytester)
    result = pytester.runpytest("claims", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1, errors=1, skipped=1)
    doc, html = load(pytester)
    expected = {"C0": "not run", "C1": "holds", "C2": "refuted", "C3": "error", "C4": "not applicable", "C5": "not run"}
    assert statuses(doc) == {**expected, "C6": "not run"}
    c3 = next(c for c in doc["claims"] if c["claim"] == "C3")["items"][0]
    assert c3["pytest_outcome"] == "error" and "the subject did not load" in c3["message"]
    assert doc["run"]["model"] == "fake" and doc["run"]["date"]
    assert doc["session"]["exitstatus"] == 1
    assert "&lt;b&gt;because&lt;/b&gt;" in html and "<b>because" not in html
    result.stdout.fnmatch_lines(["claim report: *claims.html (numbers: claims.json)"])


def test_interrupted_run_still_writes_and_marks_not_run(pytester):
    fake_suite(pytester, "\ndef test_C5_interrupt(record):\n    raise KeyboardInterrupt\n\ndef test_C0_never(record):\n    record('C0')\n")
    result = pytester.runpytest("claims", "-p", "no:cacheprovider", no_reraise_ctrlc=True)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    doc, html = load(pytester)
    assert doc["session"]["interrupted"] is True
    assert statuses(doc)["C1"] == "holds" and statuses(doc)["C0"] == "not run"
    never = next(c for c in doc["claims"] if c["claim"] == "C0")["items"]
    assert [i["nodeid"] for i in never] == ["claims/test_fake.py::test_C0_never"]  # collected, never ran
    assert "The run was interrupted" in html


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_value_that_cannot_travel_fails_loudly(pytester, xdist):
    bad = (
        "\ndef test_C0_dict_outcome(request):\n    request.node.user_properties.append(('claim_outcome', {'claim': 'C0'}))\n"
        "\ndef test_C5_object(record, request):\n    record('C5')\n    request.node.user_properties.append(('extra', object()))\n"
    )
    fake_suite(pytester, bad)
    result = pytester.runpytest_subprocess("claims", "-p", "no:cacheprovider", *xdist)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*test_C0_dict_outcome*", "*must be a JSON string*"], consecutive=False)
    result.stdout.fnmatch_lines(["*test_C5_object*"])
    assert "INTERNALERROR" not in result.stdout.str()
    doc, _ = load(pytester)
    assert statuses(doc)["C0"] == "error" and statuses(doc)["C5"] == "error"
    assert statuses(doc)["C1"] == "holds"


def test_fake_suite_under_xdist_has_every_claim_once(pytester):
    fake_suite(pytester)
    result = pytester.runpytest_subprocess("claims", "-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=1, failed=1, errors=1, skipped=1)
    doc, _ = load(pytester)
    assert sorted(p.name for p in (pytester.path / "reports").iterdir()) == ["claims.html", "claims.json"]
    expected = {"C0": "not run", "C1": "holds", "C2": "refuted", "C3": "error", "C4": "not applicable", "C5": "not run"}
    assert statuses(doc) == {**expected, "C6": "not run"}


def test_report_path_and_no_report(pytester):
    fake_suite(pytester)
    pytester.runpytest("claims", "--report", "elsewhere/run.html", "-p", "no:cacheprovider")
    assert (pytester.path / "elsewhere" / "run.html").is_file() and (pytester.path / "elsewhere" / "run.json").is_file()
    assert not (pytester.path / "reports").exists()
    pytester.runpytest("claims", "--no-report", "--report", "other/run.html", "-p", "no:cacheprovider")
    assert not (pytester.path / "reports").exists() and not (pytester.path / "other").exists()


def test_a_session_without_claims_writes_nothing(pytester):
    fake_suite(pytester)
    result = pytester.runpytest("tests", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "reports").exists()


def test_a_claims_collection_error_is_reported(pytester):
    fake_suite(pytester)
    (pytester.path / "claims" / "test_broken.py").write_text("import no_such_module_here\n")
    result = pytester.runpytest("claims", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED  # pytest stops on collection errors
    doc, html = load(pytester)
    assert [e["nodeid"] for e in doc["session"]["collection_errors"]] == ["claims/test_broken.py"]
    assert "no_such_module_here" in html
