"""The claims under another intervention: its strengths, its expectations section, its run record.

`pytest claims/ --intervention KIND` measures, for each of the note's factors f (0.5, 1.5, drawn in
[0.5, 1.5]), the kind's strength `Kind.from_note(f)`; only a `[model.KIND]` expectations section
can fail a test, every other claim is a finding; the report's run record names the intervention.
"""

from __future__ import annotations

import json

import pytest

from harness.intervene.kinds import KINDS, InterventionSpec
from harness.judge.expectations import load_expectations, read_table
from harness.judge.outcome import FINDING
from harness.judge.verdict import HOLDS, REFUTED
from harness.measure.record import Profile
from harness.note import CLAIMS
from tests.test_hostile import _pytest

TABLE = """
[minilm]
C3 = { verdict = "refuted", reason = "post-LN" }

[minilm.noise]
C2 = { verdict = "holds", reason = "relative Δ at L is s" }
C5 = "refuted"
"""


def test_the_claims_strengths_lie_in_each_kinds_range_and_never_at_its_identity():
    for kind in KINDS.values():
        for f in (0.5, 1.5, 0.9, 1.1):
            s = kind.from_note(f)
            assert kind.allowed[0] <= s <= kind.allowed[1] and s != kind.identity, (kind.name, f, s)
        assert (kind.from_note(0.5), kind.from_note(1.5)) == pytest.approx(kind.drawn)


def test_only_the_interventions_own_section_can_fail(tmp_path):
    path = tmp_path / "expectations.toml"
    path.write_text(TABLE)
    assert set(read_table(path)["minilm"]) == {"C3", "noise"}
    scale = load_expectations(path, "minilm", 2)
    assert scale["C3"].verdict == REFUTED and scale["C2"].verdict == HOLDS  # the note's scaling: as before
    noise = load_expectations(path, "minilm", 2, intervention="noise")
    assert (noise["C2"].verdict, noise["C2"].where) == (HOLDS, "[minilm.noise]") and noise["C5"].verdict == REFUTED
    assert all(noise[c].verdict == FINDING for c in CLAIMS if c not in ("C2", "C5"))  # C3's [minilm] entry is scaling's
    other = load_expectations(path, "minilm", 2, intervention="add")
    assert all(e.verdict == FINDING and "no [minilm.add] section" in e.reason for e in other.values())
    mapped = load_expectations(path, "minilm", 4, judged=2, intervention="noise")  # a layer map's other layer
    assert all(e.verdict == FINDING for e in mapped.values())


def test_c5s_curve_is_stated_only_where_each_token_moves_by_its_own_norm():
    assert InterventionSpec("scale").first_token_curve_note() is None
    assert InterventionSpec("noise").first_token_curve_note() is None
    assert "positions all" in InterventionSpec("scale", positions="rest").first_token_curve_note()
    for kind in ("scale-update", "add", "mean-ablate"):
        assert KINDS[kind].delta_at_layer in InterventionSpec(kind).first_token_curve_note()


def test_claims_under_noise_measure_its_strengths_and_a_named_section_fails(tmp_path):
    expectations = tmp_path / "expectations.toml"
    expectations.write_text('[minilm.noise]\nC2 = { verdict = "refuted", reason = "written to fail" }\n')
    report = tmp_path / "noise.html"
    run = _pytest(
        "claims/",
        "--model",
        "minilm",
        "--intervention",
        "noise",
        "-k",
        "C2 or C1",
        "--expectations",
        str(expectations),
        "--report",
        str(report),
        env={"CI": "true"},
    )
    text = run.stdout + run.stderr
    assert run.returncode == 1 and "C2 unexpected pass on minilm" in text and "[minilm.noise]" in text, text[-3000:]
    data = json.loads(report.with_suffix(".json").read_text())
    assert data["run"]["intervention"]["intervention"] == "noise" and data["run"]["settings"]["intervention"] == "noise"
    notes = [i for c in data["claims"] if c["claim"] == "C2" for i in c["items"] if i.get("factor") is not None]
    assert notes, data["claims"]
    for item in notes:
        prof = Profile.from_dict(item["evidence"]["profile"])
        assert prof.intervention == "noise" and prof.factors == (pytest.approx(KINDS["noise"].from_note(item["factor"])),)
        at = prof.site(f"block.{prof.layer}")
        assert prof.relative_delta[0, at] == pytest.approx(prof.factors[0], rel=1e-6)  # noise: relative Δ at L is s
    c1 = next(c for c in data["claims"] if c["claim"] == "C1")
    assert c1["status"].startswith("finding"), c1["status"]  # [minilm.noise] does not name C1


def test_update_expectations_refuses_another_intervention(tmp_path):
    expectations = tmp_path / "expectations.toml"
    expectations.write_text("[minilm]\n")
    before = expectations.read_bytes()
    run = _pytest(
        "claims/",
        "--model",
        "minilm",
        "--intervention",
        "scale-update",
        "-k",
        "C1 and not drawn",
        "--no-report",
        "--expectations",
        str(expectations),
        "--update-expectations",
        env={"CI": "true"},
    )
    assert "expectations NOT updated" in run.stdout + run.stderr and expectations.read_bytes() == before


def test_every_note_claim_states_its_rule_under_every_kind_or_why_not():
    from harness.note import NOTE_CLAIMS

    for claim in NOTE_CLAIMS:
        assert claim.problems() == [], claim.id
        for kind in KINDS:
            assert kind in claim.under or kind in claim.not_under, (claim.id, kind)  # stated, never left to the default
            spec = InterventionSpec(kind)
            assert claim.not_applicable_under(spec) is None  # every kind on every position is judged...
            assert claim.meaning_under(spec).startswith(claim.under[kind])
    first = InterventionSpec("noise", positions="first")
    skipped = {c.id for c in NOTE_CLAIMS if c.not_applicable_under(first)}
    assert skipped == {"C0", "C2", "C3", "C5"}  # ...but Δ at block L leaves out the only edited token under positions first
    assert "0 by construction" in CLAIMS["C2"].not_applicable_under(first)
    rest = CLAIMS["C5"].meaning_under(InterventionSpec("scale", positions="rest"))
    assert "causal decoder" in rest and "never edited" in rest
    noise = CLAIMS["C2"].meaning_under(InterventionSpec("noise"))
    assert "exactly s" in noise and "0.6667·f" in noise  # the note's factor f is measured as its strength


def test_a_claim_under_an_unknown_intervention_is_a_problem():
    from harness.judge.claim import CLAIMS as REGISTRY
    from harness.judge.claim import Claim, Threshold

    claim = Claim("under-typo", "t", "s", statistic_of=lambda v: v.delta[..., -1], thresholds={"T": Threshold(1.0, "r")},
                  under={"nosie": "typo"}, not_under={"positions=last": "typo"})  # fmt: skip
    REGISTRY.pop("under-typo")
    problems = claim.problems()
    assert any("'nosie'" in p and "noise" in p for p in problems) and any("'positions=last'" in p for p in problems), problems


def test_drawn_factors_leave_out_only_the_band_around_the_kinds_identity():
    from hypothesis import given, settings

    from harness.note.thresholds import FACTOR_BAND
    from harness.suite.checks import drawn_factors

    for kind in KINDS.values():
        near = [f for f in (0.95, 1.0, 1.05) if kind.near_identity(f, FACTOR_BAND)]
        assert near == ([0.95, 1.0, 1.05] if kind.identity == 1.0 else []), kind.name  # identity 0: no f in [0.5, 1.5] is near
    seen: list[float] = []

    @settings(max_examples=300, database=None)
    @given(f=drawn_factors(True, "noise"), g=drawn_factors(True, "scale"))
    def draw(f: float, g: float) -> None:
        assert 0.5 <= f <= 1.5 and abs(1 - g) >= FACTOR_BAND
        seen.append(f)

    draw()
    assert any(abs(1 - f) < FACTOR_BAND for f in seen)  # noise's factors near 1 are strengths near 2/3


def test_an_outcome_names_its_intervention_and_what_the_rule_means_there():
    from harness.judge.outcome import ClaimOutcome
    from harness.judge.verdict import Verdict

    verdict = Verdict("C2", HOLDS, 0.1, "m", "r")
    scale = ClaimOutcome.measured(verdict, CLAIMS["C2"], HOLDS)
    assert (scale.intervention, scale.under) == ("scale", "")
    noise = ClaimOutcome.measured(verdict, CLAIMS["C2"], HOLDS, intervention=InterventionSpec("noise", positions="rest"))
    assert noise.intervention == "noise" and noise.under == CLAIMS["C2"].meaning_under(InterventionSpec("noise", positions="rest"))
    assert ClaimOutcome.from_json(noise.to_json()) == noise
