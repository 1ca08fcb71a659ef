"""The claims' judgements on hand-made profiles: each must hold where the claim is true and be
refuted where it is not, with margins that say by how much."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.judge.expectations import Expectation, load_expectations, summarize, write_expectations
from harness.judge.outcome import FINDING
from harness.judge.verdict import HOLDS, PROMPT_SHARE, REFUTED
from harness.measure.record import Profile
from harness.note import CLAIMS, c3_growth, c4_final_drop, spans
from harness.note.c0_causality import judge_c0
from harness.note.c1_no_change_before import judge_c1
from harness.note.c2_jump_at_layer import judge_c2
from harness.note.c3_growth import judge_c3
from harness.note.c4_final_drop import judge_c4
from harness.note.c5_first_token import judge_c5, predicted_crossing_length, predicted_first_token_ratio
from harness.note.spans import final_readings
from harness.note.thresholds import DROP_MIN, FIRST_TOKEN_RATIO, GROWTH_STEP, INVARIANT_SHARE, JUMP_RELATIVE, SLIGHT_DROP_MAX, ZERO_RELATIVE

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
    verdict = judge_c1(make([0, 1e-2, 0, 5, 6, 8, 11, 10]))
    assert verdict.verdict == REFUTED and verdict.margin == pytest.approx(1e-4 - 1e-3)
    assert judge_c1(make([0, 1e-2, 0, 5, 6, 8, 11, 10]), dtype="bfloat16").verdict == HOLDS  # looser for bf16


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
    assert verdict.margin == pytest.approx(0.25 - PROMPT_SHARE) and "margin = prompt share − PROMPT_SHARE" in verdict.margin_text
    assert verdict.verdict == REFUTED and f"{PROMPT_SHARE:.0%}" in verdict.reason


def test_c0_over_layers():
    moved = {layer: make([0] * (layer + 1) + [1] * (len(SITES) - layer - 1), layer=layer) for layer in range(6)}
    moved[5] = make([0] * 6 + [1, 0], layer=5)  # the last block scaled: the final norm is scale-invariant, Δ = 0 there
    verdict = judge_c0(moved)
    assert verdict.verdict == HOLDS
    assert [(x["layer"], x["site"], x["share_of_scaling"]) for x in verdict.evidence["invariant_sites"]] == [(5, "final_norm", 0.0)]
    moving_norm = dict(moved)
    moving_norm[5] = make([0] * 6 + [1, 0.2], layer=5)  # the final norm moved by 20 % of the scaling: not invariant
    verdict = judge_c0(moving_norm)
    assert verdict.verdict == REFUTED and "block 5: final_norm moved by 0.2 of the scaling" in verdict.reason
    assert verdict.margin == pytest.approx(INVARIANT_SHARE - 0.2)
    leaked = dict(moved)
    leaked[3] = make([0, 0, 0.5, 0, 1, 1, 1, 1], layer=3)
    verdict = judge_c0(leaked)
    assert verdict.verdict == REFUTED and f"block 3: {SITES[2]}, before it, moved (0.05)" in verdict.reason
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
    unknown = load_expectations(path, "unknown-model")  # no section: structural claims hold, empirical ones are findings
    assert {c for c, e in unknown.items() if e.verdict == HOLDS} == {c for c, m in CLAIMS.items() if not m.empirical} == {"C0", "C1", "C2"}
    assert {c for c, e in unknown.items() if e.verdict == FINDING} == {c for c, m in CLAIMS.items() if m.empirical}
    path.write_text('[m]\nC3 = { verdict = "maybe" }\n')
    with pytest.raises(ValueError, match="C3 expects 'maybe'; allowed: holds, refuted, not-applicable"):
        load_expectations(path, "m")


def test_summarize_holds_only_when_every_item_held():
    outcomes = {"C3": [{"verdict": HOLDS, "reason": "grew"}, {"verdict": REFUTED, "reason": "fell at 1.2"}]}
    assert summarize(outcomes)["C3"] == Expectation(REFUTED, "measured: fell at 1.2")


# ---------------------------------------------------------------------------------------------
# How sure each verdict is (issue 11): statistic, threshold, 95 % prompt-bootstrap interval, fragility.


def corpus(per, *, per_all=None, per_clean=None, lengths=None, layer=2, first=None, other=None) -> Profile:
    """A profile whose aggregates are the Frobenius norms of its per-prompt (S, P) values, as profile() makes them."""
    per = np.asarray(per, dtype=float)
    per_all = per * 20 if per_all is None else np.asarray(per_all, dtype=float)
    per_clean = np.full(per.shape, 10.0) if per_clean is None else np.asarray(per_clean, dtype=float)
    n = per.shape[1]
    agg = lambda x: np.sqrt(np.square(x).sum(axis=-1))  # noqa: E731
    clean = agg(per_clean)
    return Profile(
        model="hand-made",
        revision="-",
        layer=layer,
        sites=SITES,
        factors=(0.5,),
        prompt_lengths=tuple(lengths) if lengths is not None else (8,) * n,
        delta=agg(per)[None],
        delta_all_tokens=agg(per_all)[None],
        clean_norm=clean,
        clean_norm_all_tokens=clean if first is None else np.sqrt(clean**2 + n * np.square(first)),
        first_token_norm=np.ones(len(SITES)) if first is None else np.asarray(first, dtype=float),
        other_token_norm=np.ones(len(SITES)) if other is None else np.asarray(other, dtype=float),
        prompt_delta=per[None],
        prompt_delta_all_tokens=per_all[None],
        prompt_clean_norm=per_clean,
    )


def noisy(n=60, seed=0, spread=0.15) -> Profile:
    """GROWING on every prompt, each site scaled by its own noise, so every statistic varies across prompts."""
    rng = np.random.default_rng(seed)
    per = np.array(GROWING)[:, None] * rng.uniform(1 - spread, 1 + spread, size=(len(SITES), n))
    return corpus(per, per_all=per * rng.uniform(8, 14, size=per.shape))


ALL_JUDGES = (judge_c1, judge_c2, judge_c3, judge_c4, judge_c5)


def test_every_verdict_carries_its_statistic_threshold_and_an_interval_that_contains_it():
    prof = noisy()
    d, c, a = prof.delta[0], prof.clean_norm, prof.delta_all_tokens[0]
    block = {name: SITES.index(name) for name in SITES}
    expected = {  # the number each rule compares, computed here from the aggregate
        "C1": (0.0, ZERO_RELATIVE["float32"]),
        "C2": (d[block["block.2"]] / c[block["block.2"]], JUMP_RELATIVE),
        "C3": (min(d[i + 1] / d[i] for i in range(block["block.2"], block["block.4"])), GROWTH_STEP),
        "C4": (1 - d[block["final_norm"]] / d[block["block.4"]], DROP_MIN),  # the nearer bound: 0.001 < drop ≈ 0.32
        "C5": (np.median(a[block["block.2"] : block["block.5"] + 1] / d[block["block.2"] : block["block.5"] + 1]), FIRST_TOKEN_RATIO),
    }
    for judge in ALL_JUDGES:
        verdict = judge(prof, seed=3)
        statistic, threshold = expected[verdict.claim]
        assert verdict.statistic == pytest.approx(statistic, rel=1e-12), verdict.claim
        assert verdict.threshold == threshold, verdict.claim
        low, high = verdict.ci95
        assert low <= verdict.statistic <= high, (verdict.claim, verdict.ci95)
        assert verdict.fragile is (low <= threshold <= high)
        assert verdict.evidence["bootstrap"]["resamples"] >= 1000 and verdict.evidence["bootstrap"]["seed"] == 3
        json.dumps(verdict.to_dict(), allow_nan=False)  # JSON-ready, no inf or NaN
        if verdict.claim in ("C3", "C4", "C5"):  # these vary across prompts: a real interval
            assert high - low > 1e-3 * abs(statistic), verdict.claim


def test_same_seed_same_interval_other_seed_other_interval():
    prof = noisy()
    for judge in (judge_c3, judge_c4, judge_c5):
        first, again, other = judge(prof, seed=5), judge(prof, seed=5), judge(prof, seed=6)
        assert first.ci95 == again.ci95 and first.to_dict() == again.to_dict()
        assert first.ci95 != other.ci95
        assert first.verdict == other.verdict and first.statistic == other.statistic  # the verdict is the rule's


def test_fragile_flips_when_the_threshold_moves_inside_the_interval(monkeypatch):
    prof = noisy(spread=0.05)  # every prompt grows at every step: C3 holds on all of them
    steady = judge_c3(prof)
    low, high = steady.ci95
    assert steady.verdict == HOLDS and not steady.fragile and low > GROWTH_STEP
    inside = (low + steady.statistic) / 2  # below the statistic, inside the interval
    monkeypatch.setattr(c3_growth, "GROWTH_STEP", inside)
    moved = judge_c3(prof)
    assert moved.evidence["aggregate_holds"] is True  # the aggregate still clears it (the prompt share may not)
    assert moved.fragile is True and moved.threshold == inside and moved.ci95 == (low, high)
    monkeypatch.setattr(c3_growth, "GROWTH_STEP", low - 1e-9)  # just outside again
    assert judge_c3(prof).fragile is False


def test_c4_reports_the_bound_at_risk(monkeypatch):
    prof = noisy()
    verdict = judge_c4(prof)
    assert verdict.evidence["threshold_bounds"] == [DROP_MIN, SLIGHT_DROP_MAX] and verdict.fragile is False
    _, high = verdict.ci95
    monkeypatch.setattr(c4_final_drop, "SLIGHT_DROP_MAX", (verdict.statistic + high) / 2)  # the upper bound moves inside
    moved = judge_c4(prof)
    assert moved.fragile is True and moved.threshold == (verdict.statistic + high) / 2 and moved.verdict == REFUTED


def test_without_per_prompt_data_there_is_no_interval():
    verdict = judge_c5(make(GROWING, delta_all=np.array(GROWING) * 12))
    assert verdict.statistic == pytest.approx(12) and verdict.threshold == FIRST_TOKEN_RATIO
    assert verdict.ci95 is None and verdict.fragile is None and "bootstrap" not in verdict.evidence
    assert verdict.to_dict()["ci95"] is None


def test_interval_width_matches_the_analytic_standard_error():
    """C2's statistic on a corpus with clean norm 10 per prompt is sqrt(Σ u_p²) / sqrt(100 P), u_p the
    prompts' Δ at block 2. Delta method: SE = sqrt(P · var(u²)) / (2 · sqrt(Σ u²) · sqrt(100 P)); the
    interval is ≈ 2 · 1.96 · SE wide (Monte-Carlo error at 2000 resamples ≈ 2 %: 8 % tolerance)."""
    n = 400
    u = np.random.default_rng(1).uniform(2.0, 8.0, size=n)
    per = np.zeros((len(SITES), n))
    per[SITES.index("block.2") :] = u
    verdict = judge_c2(corpus(per))
    x = u**2
    se = np.sqrt(n * x.var()) / (2 * np.sqrt(x.sum()) * np.sqrt(100 * n))
    low, high = verdict.ci95
    assert verdict.statistic == pytest.approx(np.sqrt(x.sum() / (100 * n)))
    assert high - low == pytest.approx(2 * 1.96 * se, rel=0.08)


def test_c3_and_c4_list_each_prompts_statistic():
    good = [0, 0, 0, 5, 6, 8, 11, 7.5]
    flat = [0, 0, 0, 5, 0, 0, 1, 2]  # Δ falls to 0 at block.3: the next step is infinite
    prof = corpus(np.array([good, flat]).T)
    c3, c4 = judge_c3(prof), judge_c4(prof)
    assert c3.evidence["prompt_statistic"] == pytest.approx([6 / 5, 0.0])
    assert c3.evidence["prompt_nonlinearity"][0] == pytest.approx(spans.nonlinearity(np.array([5, 6, 8])))
    assert c4.evidence["prompt_statistic"][0] == pytest.approx(1 - 7.5 / 8)
    assert c4.evidence["prompt_statistic"][1] is None  # 1 − 2/0 = −inf: JSON has no infinity
    assert c3.evidence["prompt_lengths"] == [8, 8]
    json.dumps(c3.to_dict(), allow_nan=False)
    json.dumps(c4.to_dict(), allow_nan=False)


def test_c5_length_curve_from_first_and_other_token_norms():
    """Every token has norm m = 2 except the first, f = 12: r = 6. Scaling by 0.5 moves each token by
    half its norm, so a prompt of T tokens has Δ = sqrt(T − 1)·m/2 without the first token and
    sqrt((T − 1)m² + f²)/2 with it; its ratio at block 2 is sqrt(1 + r²/(T − 1)), the predicted curve."""
    m, f = 2.0, 12.0
    lengths = np.array([3, 5, 9, 17, 33, 65])
    without = np.sqrt(lengths - 1) * m / 2
    with_first = np.sqrt((lengths - 1) * m**2 + f**2) / 2
    per = np.zeros((len(SITES), lengths.size))
    per_all = np.zeros_like(per)
    per[SITES.index("block.2") :], per_all[SITES.index("block.2") :] = without, with_first
    clean = np.tile(np.sqrt(lengths - 1) * m, (len(SITES), 1))  # ‖H_clean‖ over the other tokens
    prof = corpus(per, per_all=per_all, per_clean=clean, lengths=lengths, first=np.full(len(SITES), f), other=np.full(len(SITES), m))
    evidence = judge_c5(prof).evidence
    assert evidence["norm_ratio_r"] == pytest.approx(f / m)
    assert evidence["first_token_rms_norm"] == pytest.approx(f) and evidence["other_token_rms_norm"] == pytest.approx(m)
    assert evidence["prompt_ratio_at_layer"] == pytest.approx(predicted_first_token_ratio(f / m, lengths).tolist())
    assert evidence["prompt_ratio_at_layer"] == pytest.approx(np.sqrt(1 + 36 / (lengths - 1)).tolist())
    crossing = evidence["predicted_crossing_length"]
    assert crossing == pytest.approx(1 + 36 / 99) == predicted_crossing_length(6.0)
    assert predicted_first_token_ratio(6.0, [crossing]) == pytest.approx([FIRST_TOKEN_RATIO])
    assert evidence["predicted_lengths"][0] == 2 and evidence["predicted_lengths"][-1] == lengths.max()
    assert evidence["predicted_ratio"] == pytest.approx(predicted_first_token_ratio(6.0, evidence["predicted_lengths"]).tolist())
    # the GPT-2 estimate: r ≈ 42 reaches an order of magnitude only up to about 18 tokens
    assert int(predicted_crossing_length(42.0)) == 18
    with pytest.raises(ValueError, match="not above 1"):
        predicted_first_token_ratio(6.0, [1, 4])


def test_c0_statistic_and_its_interval_over_layers():
    rng = np.random.default_rng(2)

    def at(layer: int, prompts: bool) -> Profile:
        per = np.zeros((len(SITES), 20))
        per[layer + 1 :] = rng.uniform(1, 2, size=(len(SITES) - layer - 1, 20))
        if layer == 5:
            per[-1] = 0.0  # the final norm after the scaled last block: scale-invariant, it does not move
        return corpus(per, layer=layer) if prompts else make(np.sqrt(np.square(per).sum(axis=1)), layer=layer)

    plain = judge_c0({layer: at(layer, False) for layer in range(6)})
    assert plain.statistic == 0.0 and plain.threshold == ZERO_RELATIVE["float32"] and plain.ci95 is None and plain.fragile is None
    assert plain.evidence["statistic_is"] == "largest relative Δ before the scaled block"
    sampled = judge_c0({layer: at(layer, True) for layer in range(6)}, seed=1)
    assert sampled.verdict == HOLDS and sampled.ci95 == (0.0, 0.0) and sampled.fragile is False
