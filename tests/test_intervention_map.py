"""The intervention map: `--interventions scale,scale-update,noise` judges C1–C6 under each kind in one
session, sharing one clean pass per model; the report shows claim × intervention per model.

Only --intervention's results (and kinds with a [model.KIND] section) can fail; the others are findings.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.errors import InputError
from harness.intervene.kinds import KINDS, InterventionSpec
from harness.report.outcomes import assemble
from harness.settings import Settings, parse_interventions
from tests.test_hostile import _pytest


def test_the_map_names_known_kinds_once_in_kinds_order_and_always_holds_the_judged_one(tmp_path):
    assert parse_interventions(" noise, scale ,noise") == "scale,noise"
    with pytest.raises(ValueError, match="'nosie', which is no intervention"):
        parse_interventions("scale,nosie")
    settings = Settings(model="minilm", intervention="mean-ablate", interventions="noise,scale")
    assert settings.map_interventions() == ["scale", "noise", "mean-ablate"]
    assert Settings(model="minilm").map_interventions() == []
    assert settings.at_intervention("noise").intervention_spec() == InterventionSpec("noise")
    with pytest.raises(InputError, match="add needs --direction"):
        Settings(model="minilm", interventions="scale,add").validated()
    vector = tmp_path / "v.npy"
    np.save(vector, np.ones(4, dtype=np.float32))
    mapped = Settings(model="minilm", interventions="scale,add", direction=vector).validated()
    assert mapped.intervention_spec().direction is None  # the direction is the map's add's, not scale's
    assert mapped.at_intervention("add").intervention_spec().direction == vector
    with pytest.raises(InputError, match="only add reads a direction"):
        Settings(model="minilm", interventions="scale,noise", direction=vector).validated()


def test_a_models_profiles_under_each_kind_share_one_clean_pass():
    from harness.measure.session import Measurements
    from harness.model import load_subject
    from harness.model.prompts import tokenize

    subject = load_subject("random-gpt2", device="cpu")
    settings = Settings(model="random-gpt2", device="cpu", interventions="scale,noise")
    m = Measurements(subject, tokenize(subject, ["The cat sat on the mat.", "Paris is the capital of France."]), settings)
    scale = m.at(settings).profile(2, (0.5,))
    noise = m.at(settings.at_intervention("noise")).profile(2, (0.5,))
    assert len(m.cleans) == 1 and len(m.profiles) == 2
    assert (scale.intervention, scale.factors) == ("scale", (0.5,))
    assert noise.intervention == "noise" and noise.factors == (pytest.approx(KINDS["noise"].from_note(0.5)),)
    at = scale.site("block.2")
    np.testing.assert_allclose(scale.relative_delta[0, at], 0.5, rtol=1e-6)  # |1 − s|
    np.testing.assert_allclose(noise.relative_delta[0, at], noise.factors[0], rtol=1e-6)  # s
    np.testing.assert_array_equal(scale.clean_norm, noise.clean_norm)  # the same clean pass


def _item(claim: str, kind: str, margin: float, status: str, statistic: float) -> tuple[str, dict]:
    return claim, {"claim": claim, "model": "m", "layer": 2, "intervention": kind, "margin": margin, "status": status,
                   "statistic": statistic, "intervention_map": True, "nodeid": f"{claim}-{kind}-{margin}"}  # fmt: skip


def test_the_document_has_one_claim_by_intervention_table_per_model_and_the_matrix_keeps_the_judged_kind():
    run = {"models": [{"model": "m", "layer": 2, "intervention": "scale", "interventions": ["scale", "noise"]}]}
    items = [
        _item("C2", "scale", 0.45, "holds", 0.5),
        _item("C2", "scale", 0.40, "holds", 0.45),
        _item("C2", "noise", -0.1, "finding: refuted", 0.02),
        _item("C3", "noise", 0.2, "finding: holds", 1.5),
    ]
    doc = assemble(items, run)
    table = doc["intervention_map"]["m"]
    assert table["interventions"] == ["scale", "noise"] and table["judged"] == "scale"
    row = table["claims"].index("C2")
    assert table["statistic"][row] == [0.45, 0.02] and table["status"][row] == ["holds", "finding: refuted"]
    assert table["margin"][table["claims"].index("C3")] == [None, 0.2]  # C3 not run under scale
    cell = next(c for c in doc["matrix"]["cells"] if c["claim"] == "C2")
    assert cell["statistic"] == 0.45 and cell["status"] == "holds"  # noise's finding stays out of the verdict matrix
    c2 = next(c for c in doc["claims"] if c["claim"] == "C2")
    assert c2["margin"] == 0.40
    assert "intervention_map" not in assemble(items[:2], {"models": [{"model": "m", "layer": 2}]})


def test_claims_under_an_intervention_map_on_random_gpt2(tmp_path):
    """C2 under scale and noise in one run: the page's table holds the measured statistics, which equal
    the kinds' exact relative Δ at block L (|1 − f| and s = 2f/3), the smaller margin deciding each cell."""
    from harness.note import CLAIMS

    report = tmp_path / "map.html"
    run = _pytest(
        "claims/", "--model", "random-gpt2", "--interventions", "scale,noise", "-k", "C2 and not drawn", "--report", str(report),
        env={"CI": "true"},
    )  # fmt: skip
    text = run.stdout + run.stderr
    assert run.returncode == 0, text[-3000:]
    assert "4 passed" in text, text[-3000:]
    data = json.loads(report.with_suffix(".json").read_text())
    table = data["intervention_map"]["random-gpt2"]
    row = table["claims"].index("C2")
    assert table["interventions"] == ["scale", "noise"] and table["judged"] == "scale"
    assert table["statistic"][row] == pytest.approx([0.5, 1 / 3], rel=1e-6)  # scale: |1 − f| at f = 0.5 and 1.5; noise: 2·0.5/3
    assert table["status"][row] == ["holds", "finding: holds"]  # no [random-gpt2.noise] section: a finding
    items = next(c for c in data["claims"] if c["claim"] == "C2")["items"]
    noise = [i for i in items if i["intervention"] == "noise"]
    assert len(noise) == 2 and all(i["under"] == CLAIMS["C2"].meaning_under(InterventionSpec("noise")) for i in noise)
    assert all(i["under"] == "" for i in items if i["intervention"] == "scale")
    assert [m["interventions"] for m in data["run"]["models"]] == [["scale", "noise"]]
    page = report.read_text()
    assert 'class="layermap interventionmap" data-model="random-gpt2"' in page and "under noise:" in page
