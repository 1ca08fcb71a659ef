"""C6's judge and the Profile's prediction fields, on hand-made profiles (no model)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.judge.bootstrap import RESAMPLES, resample_counts
from harness.judge.verdict import HOLDS, NOT_APPLICABLE, REFUTED
from harness.measure.record import Profile
from harness.note import CLAIMS
from harness.note.c6_predictions import judge_c6
from harness.note.thresholds import KL_MATERIAL, THRESHOLDS, TOP1_MAX


def make(kl_pp: list[float], top1_pp: list[float], positions: list[int], per_prompt: bool = True) -> Profile:
    """A one-factor profile with predictions whose aggregates are the position-weighted means of the per-prompt values."""
    n = np.asarray(positions, dtype=np.float64)
    kl_pp, top1_pp = np.asarray([kl_pp], dtype=np.float64), np.asarray([top1_pp], dtype=np.float64)
    sites = ("embed", "block.0", "block.1", "block.2", "final_norm")
    zeros = np.zeros((1, len(sites)))
    return Profile(
        model="m",
        revision="r",
        layer=1,
        sites=sites,
        factors=(0.5,),
        prompt_lengths=tuple(int(k) + 1 for k in positions),
        delta=zeros,
        delta_all_tokens=zeros,
        clean_norm=np.ones(len(sites)),
        clean_norm_all_tokens=np.ones(len(sites)),
        first_token_norm=np.ones(len(sites)),
        other_token_norm=np.ones(len(sites)),
        kl=(np.nan_to_num(kl_pp) * n).sum(axis=1) / n.sum(),
        top1_agreement=(np.nan_to_num(top1_pp) * n).sum(axis=1) / n.sum(),
        nll_change=np.array([0.2]),
        prompt_kl=kl_pp if per_prompt else None,
        prompt_top1_agreement=top1_pp if per_prompt else None,
        prediction_positions=n,
        next_token_positions=np.maximum(n - 1, 0),
        predictions_include_first=False,
    )


def test_c6_is_the_derived_claim_with_its_thresholds():
    claim = CLAIMS["C6"]
    assert claim.section == "§4" and claim.derived.startswith("derived from the conclusion") and claim.needs == ">="
    assert claim.empirical and all(not CLAIMS[c].derived for c in ("C0", "C1", "C2", "C3", "C4", "C5"))
    assert THRESHOLDS["KL_MATERIAL"] == KL_MATERIAL == 0.1 and THRESHOLDS["TOP1_MAX"] == TOP1_MAX == 0.9
    assert set(CLAIMS["C6"].threshold_values()) == {"KL_MATERIAL", "TOP1_MAX", "PROMPT_SHARE"}


@pytest.mark.parametrize(
    ("kl", "top1", "verdict", "words"),
    [
        ([0.5, 0.4, 0.3, 0.6], [0.5, 0.6, 0.7, 0.4], HOLDS, "of the top-1 predictions change"),
        ([0.05, 0.04, 0.03, 0.06], [0.5, 0.6, 0.7, 0.4], REFUTED, "barely move"),
        ([0.5, 0.4, 0.3, 0.6], [0.95, 0.97, 0.99, 0.93], REFUTED, "stay"),
        ([0.5, 0.4, 0.01, 0.02], [0.5, 0.6, 0.7, 0.8], REFUTED, "only on 50% of prompts"),  # aggregate holds, two prompts do not
    ],
)
def test_both_tests_on_the_aggregate_and_the_prompt_share(kl, top1, verdict, words):
    v = judge_c6(make(kl, top1, [10, 10, 10, 10]))
    assert v.verdict == verdict and words in v.reason
    assert v.statistic == pytest.approx(np.mean(kl)) and v.threshold == KL_MATERIAL
    assert (v.margin > 0) == (verdict == HOLDS)  # a failing prompt share makes the margin its own shortfall


def test_interval_is_the_position_weighted_kl_of_resampled_corpora():
    kl, positions = [0.3, 0.05, 0.2, 0.5, 0.12], [4, 20, 7, 2, 11]
    v = judge_c6(make(kl, [0.5] * 5, positions), seed=3)
    counts = resample_counts(5, RESAMPLES, 3)
    brute = []
    for row in counts:  # the corpus written out: prompt p repeated row[p] times
        corpus = np.repeat(np.arange(5), row)
        brute.append(sum(kl[p] * positions[p] for p in corpus) / sum(positions[p] for p in corpus))
    low, high = np.quantile(brute, [0.025, 0.975])
    assert v.ci95[0] == pytest.approx(min(low, v.statistic), rel=1e-12) and v.ci95[1] == pytest.approx(max(high, v.statistic), rel=1e-12)
    assert v.fragile is (v.ci95[0] <= KL_MATERIAL <= v.ci95[1]) is True


def test_without_predictions_it_is_not_applicable_and_without_prompts_has_no_interval():
    prof = make([0.5], [0.5], [3])
    bare = Profile(**{**prof.__dict__, "kl": None, "top1_agreement": None})
    assert judge_c6(bare).verdict == NOT_APPLICABLE
    aggregate_only = judge_c6(make([0.5, 0.4], [0.5, 0.5], [3, 3], per_prompt=False))
    assert aggregate_only.verdict == HOLDS and aggregate_only.ci95 is None and aggregate_only.fragile is None


def test_profile_round_trip_keeps_predictions_and_spells_nan_as_null():
    prof = make([0.5, float("nan")], [0.5, float("nan")], [3, 0])
    data = json.loads(json.dumps(prof.to_dict(), allow_nan=False))
    assert data["prompt_kl"] == [[0.5, None]] and data["kl"] == [pytest.approx(0.5)]
    back = Profile.from_dict(data)
    np.testing.assert_array_equal(back.prompt_kl, prof.prompt_kl)
    assert back.predictions_include_first is False and back.prediction_positions.tolist() == [3, 0]
    plain = Profile.from_dict({k: v for k, v in data.items() if k not in ("kl", "prompt_kl")})
    assert plain.kl is None
