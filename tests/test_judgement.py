"""The claims' judgements on hand-made profiles: each must hold where the claim is true and be
refuted where it is not, with margins that say by how much."""

from __future__ import annotations

import numpy as np
import pytest

from harness.expectations import Expectation, load_expectations, summarize, write_expectations
from harness.judgement import (
    FIRST_TOKEN_RATIO,
    HOLDS,
    PROMPT_SHARE,
    REFUTED,
    final_readings,
    judge_c0,
    judge_c1,
    judge_c2,
    judge_c3,
    judge_c4,
    judge_c5,
)
from harness.profile import Profile

SITES = ("embed", *(f"block.{i}" for i in range(6)), "final_norm")  # 6 blocks and a final norm


def make(delta, *, layer=2, clean=None, delta_all=None, prompts=None) -> Profile:
    """A profile with one factor; `prompts` (S, P) gives per-prompt Δ (clean norms all 10)."""
    delta = np.asarray(delta, dtype=float)[None, :]
    clean = np.full(len(SITES), 10.0) if clean is None else np.asarray(clean, dtype=float)
    delta_all = delta if delta_all is None else np.asarray(delta_all, dtype=float)[None, :]
    extra = {}
    if prompts is not None:
        per = np.asarray(prompts, dtype=float)
        extra = {
            "prompt_delta": per[None],
            "prompt_delta_all_tokens": per[None] * (delta_all / np.where(delta > 0, delta, 1))[..., None],
            "prompt_clean_norm": np.full(per.shape, 10.0),
        }
    n = 1 if prompts is None else np.asarray(prompts).shape[1]
    return Profile(
        model="hand-made",
        revision="-",
        layer=layer,
        sites=SITES,
        factors=(0.5,),
        prompt_lengths=(8,) * n,
        delta=delta,
        delta_all_tokens=delta_all,
        clean_norm=clean,
        clean_norm_all_tokens=clean,
        first_token_norm=np.ones(len(SITES)),
        other_token_norm=np.ones(len(SITES)),
        **extra,
    )


GROWING = [0, 0, 0, 5, 6, 8, 11, 7.5]  # zero before block 2, a jump, growth that bends, a slight drop at final_norm


def test_the_notes_picture_holds_everywhere():
    prof = make(GROWING, delta_all=np.array(GROWING) * 20)
    for judge in (judge_c1, judge_c2, judge_c3, judge_c4, judge_c5):
        verdict = judge(prof)
        assert verdict.verdict == HOLDS, (judge.__name__, verdict.reason)
        assert verdict.margin > 0


def test_c1_refuted_when_a_site_before_moves():
    verdict = judge_c1(make([0, 1e-3, 0, 5, 6, 8, 11, 10]))
    assert verdict.verdict == REFUTED and verdict.margin == pytest.approx(1e-5 - 1e-4)
    assert judge_c1(make([0, 1e-5, 0, 5, 6, 8, 11, 10]), dtype="bfloat16").verdict == HOLDS  # looser for bf16


def test_c2_refuted_without_a_jump():
    assert judge_c2(make([0, 0, 0, 0.1, 6, 8, 11, 10])).verdict == REFUTED  # 1 % of the clean norm: too small
    assert judge_c2(make([0, 0, 0.004, 3, 6, 8, 11, 10])).verdict == REFUTED  # not 1000x the noise before it


def test_c3_refuted_by_a_fall_or_by_a_straight_line():
    falling = judge_c3(make([0, 0, 0, 5, 4, 8, 11, 10]))
    assert falling.verdict == REFUTED and "falls from block.2 to block.3" in falling.reason
    assert falling.margin == pytest.approx(4 / 5 - 1)
    straight = judge_c3(make([0, 0, 0, 5, 6, 7, 8, 7]))
    assert straight.verdict == REFUTED and "straight line" in straight.reason


def test_c4_reads_both_final_sites_and_refutes_rises_and_big_falls():
    prof = make([0, 0, 0, 5, 6, 8, 11, 10])
    assert final_readings(prof) == {
        "raw": (SITES.index("block.5"), SITES.index("block.4")),
        "note": (SITES.index("final_norm"), SITES.index("block.4")),
    }
    verdict = judge_c4(prof)
    assert verdict.evidence["readings"]["note"]["drop"] == pytest.approx(1 - 10 / 8)  # final_norm against block.4
    assert verdict.evidence["readings"]["raw"]["drop"] == pytest.approx(1 - 11 / 8)  # block.5 against block.4
    assert verdict.verdict == REFUTED  # 10 > 8: a rise on the note's reading
    assert judge_c4(make([0, 0, 0, 5, 6, 8, 11, 7])).verdict == HOLDS  # 12.5 % drop
    assert judge_c4(make([0, 0, 0, 5, 6, 8, 11, 2])).verdict == REFUTED  # 75 % drop: not slight


def test_c5_needs_an_order_of_magnitude():
    assert judge_c5(make(GROWING, delta_all=np.array(GROWING) * FIRST_TOKEN_RATIO)).verdict == HOLDS
    low = judge_c5(make(GROWING, delta_all=np.array(GROWING) * 9.0))
    assert low.verdict == REFUTED and low.margin == pytest.approx(-1.0)


def test_prompt_share_refutes_an_aggregate_that_hides_most_prompts():
    good = [0, 0, 0, 5, 6, 8, 11, 7.5]
    bad = [0, 0, 0, 5, 4, 3, 2, 2]
    prompts = np.array([good, bad, bad, bad]).T  # (S, P): only one prompt in four grows
    verdict = judge_c3(make([0, 0, 0, 10, 12, 16, 22, 15], prompts=prompts))
    assert verdict.evidence["aggregate_holds"] is True and verdict.evidence["prompt_share"] == pytest.approx(0.25)
    assert verdict.verdict == REFUTED and f"{PROMPT_SHARE:.0%}" in verdict.reason


def test_c0_over_layers():
    moved = {layer: make([0] * (layer + 1) + [1] * (len(SITES) - layer - 1), layer=layer) for layer in range(6)}
    assert judge_c0(moved).verdict == HOLDS
    leaked = dict(moved)
    leaked[3] = make([0, 0, 0.5, 0, 1, 1, 1, 1], layer=3)
    verdict = judge_c0(leaked)
    assert verdict.verdict == REFUTED and "block 3: a site before it moved" in verdict.reason
    stuck = dict(moved)
    stuck[4] = make([0, 0, 0, 0, 0, 1, 0, 1], layer=4)
    assert "block.5 did not move" in judge_c0(stuck).reason


def test_expectations_round_trip_and_defaults(tmp_path):
    path = tmp_path / "expectations.toml"
    write_expectations(path, "model-a", {"C3": Expectation(REFUTED, "measured: falls")})
    write_expectations(path, "model-a", {"C5": Expectation("not-applicable", "random weights")})  # merges, keeps C3
    table = load_expectations(path, "model-a")
    assert table["C3"] == Expectation(REFUTED, "measured: falls") and table["C5"].verdict == "not-applicable"
    assert table["C1"].verdict == HOLDS  # no entry: the note's claim
    assert all(e.verdict == HOLDS for e in load_expectations(path, "unknown-model").values())
    path.write_text('[m]\nC3 = { verdict = "maybe" }\n')
    with pytest.raises(ValueError, match="C3 expects 'maybe'; allowed: holds, refuted, not-applicable"):
        load_expectations(path, "m")


def test_summarize_holds_only_when_every_item_held():
    outcomes = {"C3": [{"verdict": HOLDS, "reason": "grew"}, {"verdict": REFUTED, "reason": "fell at 1.2"}]}
    assert summarize(outcomes)["C3"] == Expectation(REFUTED, "measured: fell at 1.2")
