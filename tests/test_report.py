"""The claim report rendered from real measurements (random-gpt2 and minilm), without pytest runs.

Checks the page against its JSON twin through a stdlib HTML parser, determinism of plots and
numbers, escaping, self-containment and atomic writes. The pytest-driven runs are in
test_report_pytester.py, the browser check in test_report_browser.py.
"""

from __future__ import annotations

import dataclasses
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import pytest

from harness.judge.outcome import ClaimOutcome, OutcomeError
from harness.note import CLAIMS
from harness.report import build_document, plots, render_html, write_report
from harness.report.outcomes import ItemResult, check_travels, claim_of
from harness.report.render import fmt
from harness.report.sample import sample_run
from harness.report.write import write_document

XSS = "<script>alert(1)</script>"


@pytest.fixture(scope="session", params=["random-gpt2", "minilm"])
def sample(request) -> tuple[list[ClaimOutcome], dict]:
    return sample_run(request.param)


@pytest.fixture(scope="session")
def written(sample, tmp_path_factory) -> tuple[Path, Path]:
    """The sample's report on disk: (html, json)."""
    outcomes, info = sample
    return write_report(outcomes, info, tmp_path_factory.mktemp("report") / "claims.html")


# ---------------------------------------------------------------------------------------------
# A small DOM from html.parser: enough to find elements by attribute and read their text.


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent, self.children, self.parts = tag, attrs, parent, [], []

    @property
    def text(self) -> str:
        return "".join(p if isinstance(p, str) else p.text for p in self.parts)

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        found = []
        for child in self.children:
            if (tag is None or child.tag == tag) and all(
                child.attrs.get(k.replace("_", "-")) == v or (k == "class_" and v in (child.attrs.get("class") or "").split())
                for k, v in attrs.items()
            ):
                found.append(child)
            found += child.find_all(tag, **attrs)
        return found


class Tree(HTMLParser):
    VOID: ClassVar[set[str]] = {"meta", "br", "img", "input", "link", "hr", "col", "source", "wbr"}

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = self.node = Node("#root", {}, None)
        self.tags: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        node = Node(tag, dict(attrs), self.node)
        self.node.children.append(node)
        self.node.parts.append(node)
        if tag not in self.VOID:
            self.node = node

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)
        node = Node(tag, dict(attrs), self.node)
        self.node.children.append(node)

    def handle_endtag(self, tag):
        node = self.node
        while node.parent is not None and node.tag != tag:
            node = node.parent
        if node.parent is not None:
            self.node = node.parent

    def handle_data(self, data):
        self.node.parts.append(data)


def parse(html: str) -> Node:
    return Tree(html).root


def document(outcomes: list[dict], info: dict) -> dict:
    items = [ItemResult(o.nodeid, outcome=o, pytest_outcome="passed") for o in outcomes]
    return json.loads(json.dumps(build_document(items, {**info, "date": "2000-01-01T00:00:00+00:00"}, {"exitstatus": 0})))


# ---------------------------------------------------------------------------------------------


def test_every_claim_section_matches_the_json(written):
    html_path, json_path = written
    doc = json.loads(json_path.read_text())
    root = parse(html_path.read_text())
    sections = {s.attrs["data-claim"]: s for s in root.find_all("section", class_="claim")}
    assert list(sections) == [c["claim"] for c in doc["claims"]] == list(CLAIMS)
    for claim in doc["claims"]:
        section = sections[claim["claim"]]
        assert section.attrs["data-status"] == claim["status"]
        rows = {r.attrs["data-nodeid"]: r for r in section.find_all("table", class_="items")[0].find_all("tr") if "data-nodeid" in r.attrs}
        assert list(rows) == [i["nodeid"] for i in claim["items"]]
        for item in claim["items"]:
            row = rows[item["nodeid"]]
            assert row.attrs["data-status"] == item["status"]
            assert row.find_all("td", class_="margin")[0].text == fmt(item["margin"])
            if item["status"] == "not applicable":
                continue  # measured nothing: the row says why
            facts = {t.attrs["data-nodeid"]: t for t in section.find_all("table", class_="evidence")}[item["nodeid"]]
            cells = {td.attrs["data-key"]: td.text for td in facts.find_all("td") if "data-key" in td.attrs}
            for key, value in item["evidence"].items():
                if key in cells:
                    assert cells[key] == fmt(value), (claim["claim"], key)
            assert cells, f"{item['nodeid']}: no evidence shown"
        # the verdict table: one row per claim, one cell per model, the claim's status in it
        row = next(r for r in root.find_all("tr", data_claim=claim["claim"]) if r.parent.attrs.get("class") == "matrix")
        assert [td.attrs["data-status"] for td in row.find_all("td", class_="cell")] == [claim["status"]]


def test_numbers_table_equals_the_profile(written):
    html_path, json_path = written
    doc = json.loads(json_path.read_text())
    c3 = next(c for c in doc["claims"] if c["claim"] == "C3")
    prof = c3["items"][0]["evidence"]["profile"]
    section = next(s for s in parse(html_path.read_text()).find_all("section", class_="claim") if s.attrs["data-claim"] == "C3")
    table = section.find_all("table", class_="numbers")[0]
    rows = [[td.text for td in tr.find_all("td")] for tr in table.find_all("tr")[1:]]
    assert [r[0] for r in rows] == prof["sites"]
    for s, row in enumerate(rows):
        assert row[1] == fmt(prof["clean_norm"][s])
        for f in range(len(prof["factors"])):
            expected = [fmt(prof["delta"][f][s]), fmt(prof["relative_delta"][f][s]), fmt(prof["delta_all_tokens"][f][s])]
            assert row[2 + 3 * f : 5 + 3 * f] == expected
    # and the numbers are the measurement's: Δ at the scaled block is exactly |1 − s| × the clean norm
    at = prof["sites"].index(f"block.{prof['layer']}")
    for f, factor in enumerate(prof["factors"]):
        assert prof["delta"][f][at] == pytest.approx(abs(1 - factor) * prof["clean_norm"][at], rel=1e-5)


def test_each_claim_section_has_one_figure_that_makes_its_point(sample, written):
    outcomes, _ = sample
    html = written[0].read_text()
    root = parse(html)
    sections = {s.attrs["data-claim"]: s for s in root.find_all("section", class_="claim")}
    captions = {cid: [f.text for f in s.find_all("figcaption")] for cid, s in sections.items()}
    status = {c["claim"]: c["status"] for c in json.loads(written[1].read_text())["claims"]}
    assert all(len(c) == 1 or (len(c) == 0 and status[cid] == "not applicable") for cid, c in captions.items()), captions
    assert captions["C0"][0].startswith("Intervention layer × site")
    assert captions["C1"][0].startswith("Δ against site up to the scaled block") and "factor 0.5, factor 1.5" in captions["C1"][0]
    assert captions["C2"][0].startswith("Δ against site up to the scaled block")
    assert captions["C3"][0].startswith("Smallest step ratio") and captions["C4"][0].startswith("Drop 1 − Δ(final)")
    assert captions["C5"][0].startswith("First-token ratio against prompt length")
    for cid, section in sections.items():
        assert all(f.find_all("svg") for f in section.find_all("figure")), f"{cid}: a figure without its plot"
    assert "plot failed" not in html
    overview = root.find_all("section", id="overview")[0]
    assert len(overview.find_all("svg")) == 1 and "first token excluded (left) and included (right)" in overview.text
    # raw numbers sit in collapsed <details>: Hypothesis examples, evidence and per-site tables
    for section in sections.values():
        for table in section.find_all("table"):
            if table.attrs.get("class") in ("examples", "evidence", "numbers"):
                node = table
                while node.tag != "details":
                    node = node.parent
                assert "open" not in node.attrs
    examples = sections["C2"].find_all("table", class_="examples")[0].find_all("tr")[1:]
    item = next(o for o in outcomes if o.claim == "C2" and o.source == "hypothesis")
    assert [tr.find_all("td")[0].text for tr in examples] == [fmt(e.factor) for e in item.examples]


def test_each_section_shows_only_the_thresholds_its_rule_uses(written):
    root = parse(written[0].read_text())
    doc = json.loads(written[1].read_text())
    for claim in doc["claims"]:
        section = next(s for s in root.find_all("section", class_="claim") if s.attrs["data-claim"] == claim["claim"])
        shown = {code.text.split(" = ")[0] for code in section.find_all("code")}
        assert shown == set(claim["items"][0]["thresholds"]), claim["claim"]
        assert len(shown) < 5


def test_two_renders_are_byte_identical_but_for_date_and_command(sample):
    outcomes, info = sample
    first = render_html(document(outcomes, info))
    plots._drawn.clear()  # draw every plot again, not from the cache
    again_info = {**info, "command": "pytest claims/ --something-else"}
    doc = document(outcomes, again_info)
    doc["run"]["date"] = "2031-12-31T23:59:59+00:00"
    second = render_html(doc)
    assert first != second

    def without_header(html: str) -> str:
        html = re.sub(r'<dd data-key="date">.*?</dd>', "", html)
        return re.sub(r'<dd data-key="command">.*?</dd>', "", html)

    assert without_header(first) == without_header(second)
    svgs = re.findall(r"<svg.*?</svg>", first, flags=re.S)
    assert len(svgs) == 7  # the overview and one per claim
    ids = re.findall(r'\bid="([^"]+)"', first)
    assert len(ids) == len(set(ids)), "inline SVGs share an id"


def test_self_contained_no_script_no_external_urls(written):
    html = written[0].read_text()
    tree = Tree(html)
    assert "script" not in tree.tags and "link" not in tree.tags and "img" not in tree.tags and "iframe" not in tree.tags
    for attr in re.findall(r'\b(?:src|href|xlink:href)="([^"]*)"', html):
        assert attr.startswith("#"), f"a reference out of the page: {attr}"
    assert "url(http" not in html and "@import" not in html
    assert "<!DOCTYPE svg" not in html and "<?xml" not in html
    assert not re.search(r"<dc:date>|<metadata>", html), "SVG metadata with a date leaked in"


def test_prompt_and_reasons_are_text_not_markup(sample, tmp_path):
    outcomes, info = sample
    hostile = [dataclasses.replace(o, reason=XSS, title=XSS) for o in outcomes]
    html_path, _ = write_report(hostile, {**info, "command": f"pytest {XSS}"}, tmp_path / "r.html")
    html = html_path.read_text()
    tree = Tree(html)
    assert "script" not in tree.tags
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    prompts = [li.text for li in tree.root.find_all("ol", class_="prompts")[0].find_all("li")]
    assert XSS in prompts  # the sample corpus carries the prompt; it shows as written
    assert XSS in tree.root.find_all("dd", data_key="command")[0].text


def test_claims_without_items_show_not_run(sample):
    outcomes, info = sample
    kept = [o for o in outcomes if o.claim in ("C1", "C2")]
    items = [ItemResult(o.nodeid, outcome=o, pytest_outcome="passed") for o in kept]
    items.append(ItemResult("claims/test_c3.py::test_C3_growth[0.5]"))  # collected, never ran
    items.append(ItemResult("claims/test_c4.py::test_C4_drop[0.5]", pytest_outcome="error", message="fixture 'subject' failed"))
    doc = json.loads(json.dumps(build_document(items, info, {"exitstatus": 2, "interrupted": True})))
    status = {c["claim"]: c["status"] for c in doc["claims"]}
    assert status == {"C0": "not run", "C1": "holds", "C2": "holds", "C3": "not run", "C4": "error", "C5": "not run", "C6": "not run"}
    html = render_html(doc)
    sections = {s.attrs["data-claim"]: s for s in parse(html).find_all("section", class_="claim")}
    assert sections["C0"].attrs["data-status"] == "not run" and "No test of this claim ran" in sections["C0"].text
    assert "fixture 'subject' failed" in sections["C4"].text
    assert "The run was interrupted" in html


def test_json_is_strict_and_spells_non_finite_numbers(sample, tmp_path):
    outcomes, info = sample
    odd = [dataclasses.replace(outcomes[1], margin=float("inf"), evidence={**outcomes[1].evidence, "ratio": [float("nan"), 1.0]})]
    _, json_path = write_report(odd, info, tmp_path / "r.html")
    text = json_path.read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    item = json.loads(text)["claims"][1]["items"][0]
    assert item["margin"] == "inf" and item["evidence"]["ratio"] == ["nan", 1.0]


def test_a_failed_write_keeps_the_old_pair_and_leaves_no_temporary(tmp_path, monkeypatch):
    import os

    from harness.report import write

    target = tmp_path / "sub" / "claims.html"
    monkeypatch.setattr(write, "render_html", lambda doc: f"page {doc['n']}")
    write_document({"claims": [], "n": 1}, target)

    def broken(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        write_document({"claims": [], "n": 2}, target)
    assert target.read_text() == "page 1" and json.loads(target.with_suffix(".json").read_text())["n"] == 1
    assert sorted(p.name for p in target.parent.iterdir()) == ["claims.html", "claims.json"]


def test_outcome_contract_errors_name_the_problem():
    assert claim_of("claims/test_growth.py::test_C3_growth[0.5]") == "C3"
    assert claim_of("claims/test_x.py::TestC::test_C12_thing") == "C12"
    assert claim_of("claims/test_x.py::test_helper") is None
    with pytest.raises(OutcomeError, match="must be a JSON string"):
        ClaimOutcome.from_json({"claim": "C1"})
    with pytest.raises(OutcomeError, match="not valid JSON"):
        ClaimOutcome.from_json("{nope")
    with pytest.raises(OutcomeError, match="lacks verdict"):
        ClaimOutcome.from_json(json.dumps({"claim": "C1"}))
    assert check_travels("other", {"a": [1, 2.5, None]}) is None
    assert "not JSON-serializable" in check_travels("other", object())


def test_written_report_for_readers(sample, written):
    """The files a person opens: the HTML names the model, the JSON holds every outcome."""
    outcomes, info = sample
    html_path, json_path = written
    doc = json.loads(json_path.read_text())
    assert sum(len(c["items"]) for c in doc["claims"]) == len(outcomes)
    assert json_path == Path(str(html_path)[: -len(".html")] + ".json")
    assert f"Claim report: {info['model']}" in html_path.read_text()


def test_c5_shows_the_first_tokens_norm_against_the_others_per_site(sample, written):
    outcomes, _ = sample
    c5 = next(o for o in outcomes if o.claim == "C5" and o.source == "note")
    norms = c5.evidence["token_norms"]
    prof = c5.evidence["profile"]
    assert norms["first_token_norm"] == prof["first_token_norm"] and norms["other_token_norm"] == prof["other_token_norm"]
    doc = json.loads(written[1].read_text())
    item = next(i for c in doc["claims"] if c["claim"] == "C5" for i in c["items"] if i.get("source") == "note")
    assert item["evidence"]["token_norms"] == norms  # in the JSON
    section = next(s for s in parse(written[0].read_text()).find_all("section", class_="claim") if s.attrs["data-claim"] == "C5")
    table = next(t for t in section.find_all("table", class_="numbers") if "First token's norm" in t.text)
    rows = [[td.text for td in tr.find_all("td")] for tr in table.find_all("tr")[1:]]
    assert [r[0] for r in rows] == norms["sites"]
    assert [r[1] for r in rows] == [fmt(v) for v in norms["first_token_norm"]]
    assert [r[2] for r in rows] == [fmt(v) for v in norms["other_token_norm"]]
    assert [r[3] for r in rows] == [fmt(f / o) for f, o in zip(norms["first_token_norm"], norms["other_token_norm"], strict=True)]


def test_a_long_corpus_is_capped_on_the_page_and_whole_in_the_json(sample, tmp_path):
    from harness.report.render import SHOWN_VALUES

    outcomes, info = sample
    many = [f"prompt number {n}" for n in range(10_000)]
    c5 = next(o for o in outcomes if o.claim == "C5" and o.source == "note")
    long = dataclasses.replace(
        c5, evidence={**c5.evidence, "prompt_lengths": [5] * 10_000, "prompt_ratio": [1.0] * 10_000, "prompt_statistic": [1.0] * 10_000}
    )
    html_path, json_path = write_report([long], {**info, "prompt_texts": many, "n_prompts": len(many)}, tmp_path / "r.html")
    html = html_path.read_text()
    tree = Tree(html)
    assert len(tree.root.find_all("ol", class_="prompts")[0].find_all("li")) == SHOWN_VALUES
    assert "and 9950 more, in the JSON twin" in html and "(10000 values; all in the JSON twin)" in html
    assert len(html) < 2_000_000
    doc = json.loads(json_path.read_text())
    assert len(doc["run"]["prompt_texts"]) == 10_000 and len(doc["claims"][5]["items"][0]["evidence"]["prompt_ratio"]) == 10_000


# ---------------------------------------------------------------------------------------------
# The verdict table, fragile verdicts, and the keys of the newer document contract (several models,
# doc["matrix"], doc["layer_map"], C6's evidence), built by hand from a real document as PLAN.md states them.


def _cell(html: str, claim: str, model_index: int = 0) -> Node:
    row = next(r for r in parse(html).find_all("tr", data_claim=claim) if r.parent.attrs.get("class") == "matrix")
    return row.find_all("td", class_="cell")[model_index]


def test_a_cell_gives_the_statistic_its_interval_and_the_rule_in_words(sample):

    outcomes, info = sample
    doc = document(outcomes, info)
    html = render_html(doc)
    for claim in doc["claims"]:
        cell = _cell(html, claim["claim"])
        decided = next(i for i in claim["items"] if i["nodeid"] == cell.attrs["data-nodeid"])
        assert decided["status"] == claim["status"] == cell.attrs["data-status"]
        if decided["statistic"] is None:
            continue
        text = cell.find_all("span", class_="stat")[0].text
        lo, hi = decided["ci95"] or (None, None)
        if claim["claim"] == "C5":  # "median ratio Δ(with first token)/Δ(without) = 1.00 [1.00, 1.01]; needs ≥ 10"
            assert text.startswith(CLAIMS["C5"].statistic + " = ") and text.endswith("; needs ≥ 10")
        if claim["claim"] == "C4":  # both bounds of a "within" rule
            assert text.endswith("; needs 0.001 < x ≤ 0.5")
        value = float(text.split(" = ")[1].split(" ")[0].rstrip(";"))
        assert value == pytest.approx(float(decided["statistic"]), rel=5e-3, abs=1e-12)
        if lo is not None:
            shown = text.split("[")[1].split("]")[0].split(", ")
            assert [float(v) for v in shown] == pytest.approx([float(lo), float(hi)], rel=5e-3, abs=1e-12)


def test_fragile_verdicts_are_marked_and_counted(sample):
    outcomes, info = sample
    c3 = [o for o in outcomes if o.claim == "C3"]
    shaky = dataclasses.replace(c3[0], fragile=True)
    doc = document([shaky, *c3[1:]], info)
    html = render_html(doc)
    assert parse(html).find_all("span", data_key="fragile")[0].text == "1"
    cell = _cell(html, "C3")
    assert bool(cell.find_all("span", class_="fragile")) == (cell.attrs["data-nodeid"] == shaky.nodeid)
    row = next(r for r in parse(html).find_all("tr", data_nodeid=shaky.nodeid) if r.parent.attrs.get("class") == "items")
    assert row.find_all("span", class_="fragile")
    doc["session"]["counts"]["fragile"] = 7  # the document's own count wins where it has one
    assert parse(render_html(doc)).find_all("span", data_key="fragile")[0].text == "7"


def contract_document(doc: dict, other: str = "other<b>model") -> dict:
    """`doc` as a two-model run with a verdict matrix, a layer map and C6 evidence, per PLAN.md's contract."""
    doc = json.loads(json.dumps(doc))
    doc["claims"] = [c for c in doc["claims"] if c["claim"] != "C6"]  # replaced by a hand-made C6 with its evidence, below
    run = doc["run"]
    run["models"] = [
        {k: run.get(k) for k in ("model", "revision", "architecture", "blocks", "first_token", "device", "dtype")},
        {"model": other, "revision": "r2", "architecture": "gpt2", "blocks": 12, "first_token": "BOS", "device": "cpu", "dtype": "float32"},
    ]
    for claim in doc["claims"]:
        extra = []
        for item in claim["items"]:
            item.setdefault("model", run["model"])
            item.setdefault("layer", run.get("layer"))
            twin = {**json.loads(json.dumps(item)), "model": other, "nodeid": item["nodeid"] + "-" + other}
            twin["status"] = "refuted" if claim["claim"] == "C3" else twin["status"]
            extra.append(twin)
        claim["items"] += extra
    factors = [0.5 + 0.125 * k for k in range(9)]
    c6_items = []
    for model in (run["model"], other):
        evidence = {
            "dose_response": {
                "factors": factors,
                "kl": [(1 - f) ** 2 for f in factors],
                "top1_agreement": [1 - abs(1 - f) / 2 for f in factors],
                "nll_change": [abs(1 - f) for f in factors],
            },
            "kl_by_layer": {"layers": [0, 1, 2, 3], "kl": [0.3, 0.2, 0.25, 0.1], "factor": 0.5},
        }
        c6_items.append(
            {
                "nodeid": f"claims/test_c6_predictions.py::test_C6[{model}]",
                "status": "holds",
                "pytest_outcome": "passed",
                "message": "",
                "problems": [],
                "model": model,
                "layer": 2,
                "factor": 0.5,
                "source": "note",
                "margin": 0.2,
                "margin_text": "KL = 0.25 (needs ≥ 0.05)",
                "reason": "predictions changed",
                "evidence": evidence,
                "statistic": 0.25,
                "threshold": 0.05,
                "ci95": [0.2, 0.3],
                "fragile": False,
                "thresholds": {"C6_KL": 0.05},
            }
        )
    doc["claims"].append(
        {
            "claim": "C6",
            "section": "§4",
            "title": "Predictions change",
            "statement": "s",
            "test": "t",
            "status": "holds",
            "margin": 0.2,
            "items": c6_items,
        }
    )
    cells = []
    for claim in doc["claims"]:
        for model in (run["model"], other):
            item = min(
                (i for i in claim["items"] if i["model"] == model), key=lambda i: i["margin"] if isinstance(i["margin"], float) else 0.0
            )
            cells.append(
                {
                    "model": model,
                    "claim": claim["claim"],
                    "status": item["status"],
                    "statistic": item["statistic"],
                    "threshold": item["threshold"],
                    "needs": ">=",
                    "ci95": item["ci95"],
                    "fragile": item["fragile"],
                    "statistic_name": f"stat of {claim['claim']}",
                    "nodeid": item["nodeid"],
                }
            )
    doc["matrix"] = {"models": [other, run["model"]], "claims": [c["claim"] for c in doc["claims"]], "cells": cells}
    doc["layer_map"] = {
        m: {
            "layers": [0, 1, 2, 3],
            "claims": ["C1", "C2", "C3"],
            "margin": [[1e-5, 1e-5, 1e-5, None], [0.4, 0.45, 0.45, 0.4], [-0.5, -0.2, 0.1, 0.3]],
            "status": [["holds"] * 3 + [None], ["holds"] * 4, ["refuted", "refuted", "refuted as expected", "holds"]],
            "statistic": [[0, 0, 0, None], [0.5] * 4, [0.5, 0.8, 1.1, 1.3]],
        }
        for m in (run["model"], other)
    }
    return doc


def test_several_models_a_given_matrix_a_layer_map_and_c6_render(sample):
    outcomes, info = sample
    doc = contract_document(document(outcomes, info))
    html = render_html(doc)
    root = parse(html)
    assert "<b>model" not in html and "other&lt;b&gt;model" in html  # model names are text
    headers = [th.text for th in root.find_all("table", class_="matrix")[0].find_all("th")]
    assert headers == ["claim", "other<b>model", info["model"]]  # the matrix's own model order
    for cell in doc["matrix"]["cells"]:
        column = doc["matrix"]["models"].index(cell["model"])
        shown = _cell(html, cell["claim"], column)
        assert shown.attrs["data-status"] == cell["status"] and shown.attrs["data-nodeid"] == cell["nodeid"]
        if cell["statistic"] is not None and cell["claim"] != "C0":  # C0's evidence names its side of the rule instead
            assert shown.text.count(f"stat of {cell['claim']} = ") == 1
    assert [p.attrs["data-model"] for p in root.find_all("p", class_="models")] == [info["model"], "other<b>model"]
    overview = root.find_all("section", id="overview")[0]
    assert "relative depth" in overview.text and len(overview.find_all("svg")) == 1
    maps = root.find_all("table", class_="layermap")
    assert [t.attrs["data-model"] for t in maps] == [info["model"], "other<b>model"]
    c3 = next(r for r in maps[0].find_all("tr") if r.attrs.get("data-claim") == "C3")
    assert [td.attrs["data-status"] for td in c3.find_all("td")] == ["refuted", "refuted", "refuted as expected", "holds"]
    assert [td.text for td in c3.find_all("td")] == ["-0.500", "-0.200", "0.100", "0.300"]
    assert "the other layers are findings" in root.find_all("section", id="layer-map")[0].text
    c6 = next(s for s in root.find_all("section", class_="claim") if s.attrs["data-claim"] == "C6")
    assert "derived from the conclusion" in c6.text and "Effect on predictions" in c6.text
    assert [f.text.startswith("Effect on predictions") for f in c6.find_all("figcaption")] == [True]
    dose = next(t for t in c6.find_all("table", class_="numbers") if t.text.startswith("Dose response"))
    rows = [[td.text for td in tr.find_all("td")] for tr in dose.find_all("tr")[1:]]
    assert [r[0] for r in rows] == [fmt(f) for f in doc["claims"][-1]["items"][0]["evidence"]["dose_response"]["factors"]]
    assert "1" in [r[0] for r in rows]  # factor 1, the clean run, is on the curve
    assert "plot failed" not in html and "script" not in Tree(html).tags


def test_without_a_matrix_the_page_computes_the_same_cells(sample):
    outcomes, info = sample
    doc = contract_document(document(outcomes, info))
    given = render_html(doc)
    del doc["matrix"]
    computed = render_html(doc)
    for claim in doc["claims"]:
        for n in range(2):  # without a matrix, models come in run["models"] order
            mine, theirs = _cell(computed, claim["claim"], n), _cell(given, claim["claim"], 1 - n)
            assert mine.attrs["data-status"] == theirs.attrs["data-status"], claim["claim"]


@pytest.fixture(scope="session")
def default_run(tmp_path_factory) -> Path:
    """The report of real minilm measurements on the suite's default corpus (harness/note/prompts.txt), as `pytest claims/` makes it."""
    from harness.report.sample import corpus

    outcomes, info = sample_run("minilm", prompts=corpus())
    return write_report(outcomes, info, tmp_path_factory.mktemp("default") / "claims.html")[0]


def test_the_page_of_the_default_run_stays_under_300_kb(default_run):
    size = default_run.stat().st_size
    assert size < 300_000, f"the page weighs {size / 1000:.0f} KB on the default corpus; the limit is 300 KB"
    assert json.loads(default_run.with_suffix(".json").read_text())["run"]["n_prompts"] > 100  # the whole corpus was measured
