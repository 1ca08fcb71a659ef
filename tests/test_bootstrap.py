"""The prompt bootstrap (harness/judge/bootstrap.py) against scipy.stats.bootstrap and against the
analytic standard error of a Frobenius aggregate."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from harness.judge.bootstrap import RESAMPLES, frobenius_aggregate, percentile_interval, prompt_bootstrap, resample_counts

P = 80
PARTS = np.random.default_rng(11).uniform(1.0, 3.0, size=(2, 4, P))  # two per-prompt parts, (S=4, P) each


def ratio_at_site_2(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """A C5-like statistic: aggregate of one part over the other at one site; (B, S) -> (B,)."""
    return num[:, 2] / den[:, 2]


def scipy_statistic(parts: np.ndarray, statistic):
    """The same statistic as scipy.stats.bootstrap sees it: a function of resampled prompt indices."""

    def of_indices(index: np.ndarray, axis: int = -1) -> np.ndarray:
        index = np.atleast_2d(index)  # (B, P) prompt drawn at each slot
        counts = np.stack([np.bincount(row, minlength=parts[0].shape[1]) for row in index])
        return statistic(*(np.sqrt(counts @ np.square(p).T) for p in parts))

    return of_indices


def test_counts_are_resampled_corpora_of_the_same_size():
    counts = resample_counts(P, 500, seed=3)
    assert counts.shape == (500, P) and np.all(counts.sum(axis=1) == P) and counts.min() >= 0
    # every prompt is drawn with probability 1/P per slot: its mean count over resamples is 1
    assert counts.mean(axis=0) == pytest.approx(np.ones(P), abs=4 * np.sqrt((1 - 1 / P) / 500))
    assert np.array_equal(counts, resample_counts(P, 500, seed=3))
    assert not np.array_equal(counts, resample_counts(P, 500, seed=4))


def test_aggregate_is_the_frobenius_norm_of_the_corpus_with_repeats():
    counts = np.array([[2, 0, 1], [0, 0, 3]])  # corpus 0: prompt 0 twice and prompt 2 once
    part = np.array([[3.0, 5.0, 4.0]])  # (S=1, P=3)
    assert frobenius_aggregate(part, counts)[:, 0] == pytest.approx([np.sqrt(9 + 9 + 16), np.sqrt(3 * 16)])
    all_once = frobenius_aggregate(PARTS[0], np.ones((1, P), dtype=int))[0]
    assert all_once == pytest.approx(np.linalg.norm(PARTS[0], axis=1), rel=1e-12)


def test_same_resamples_as_scipy_give_scipys_percentile_interval():
    """scipy draws rng.integers(0, P, (B, P)) from the same Generator: the distributions are equal up to
    float summation order, so the endpoints agree to rounding."""
    ours = prompt_bootstrap(ratio_at_site_2, list(PARTS), seed=7)
    theirs = stats.bootstrap(
        (np.arange(P),),
        scipy_statistic(PARTS, ratio_at_site_2),
        n_resamples=RESAMPLES,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(7),
    )
    assert ours.distribution == pytest.approx(theirs.bootstrap_distribution, rel=1e-12)
    assert (ours.low, ours.high) == pytest.approx(tuple(theirs.confidence_interval), rel=1e-12)


def test_independent_draws_agree_with_scipy_within_sampling_error():
    """With its own draws scipy's interval differs by Monte-Carlo error only. Each endpoint (a 2.5 % or
    97.5 % quantile of B = 2000 draws) has a standard deviation of about
    sqrt(0.025 · 0.975 / B) / φ(1.96) ≈ 0.06 bootstrap SE; the difference of two such, ≈ 0.085 SE.
    The tolerance, 0.35 SE, is four of those."""
    ours = prompt_bootstrap(ratio_at_site_2, list(PARTS), seed=1)
    theirs = stats.bootstrap(
        (np.arange(P),),
        scipy_statistic(PARTS, ratio_at_site_2),
        n_resamples=RESAMPLES,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(12345),
    )
    se = theirs.standard_error
    assert abs(ours.low - theirs.confidence_interval.low) < 0.35 * se
    assert abs(ours.high - theirs.confidence_interval.high) < 0.35 * se
    assert np.std(ours.distribution, ddof=1) == pytest.approx(se, rel=0.1)  # SE of an SE estimate from 2000 draws: ≈ 1.6 %


def test_width_matches_the_analytic_standard_error():
    """Per-prompt squared norms x_p: the aggregate sqrt(Σ x_p) over P prompts has, by the delta method,
    SE = sqrt(P · var(x)) / (2 · sqrt(Σ x)), so a 95 % interval is ≈ 2 · 1.96 · SE wide. The width's
    Monte-Carlo error at B = 2000 is ≈ 2 %, the delta method's error at P = 400 under 1 %: 8 % tolerance."""
    rng = np.random.default_rng(0)
    norms = rng.uniform(1.0, 3.0, size=(1, 400))  # (S=1, P)
    x = norms[0] ** 2
    se = np.sqrt(x.size * x.var()) / (2 * np.sqrt(x.sum()))
    interval = prompt_bootstrap(lambda agg: agg[:, 0], [norms], seed=0)
    assert interval.high - interval.low == pytest.approx(2 * 1.96 * se, rel=0.08)
    assert interval.contains(float(np.sqrt(x.sum())))


def test_a_constant_statistic_collapses_and_nan_resamples_are_counted():
    same = np.full((2, 30), 4.0)
    interval = prompt_bootstrap(lambda agg: agg[:, 0] / agg[:, 1], [same], seed=0)
    assert interval.low == pytest.approx(1.0, rel=1e-12) and interval.high == pytest.approx(1.0, rel=1e-12)
    values = np.r_[np.arange(99.0), np.nan]
    assert percentile_interval(values, 0.5) == pytest.approx((24.5, 73.5))  # the NaN left out, 99 values left
    sometimes = prompt_bootstrap(lambda agg: np.where(agg[:, 0] > 10, np.nan, agg[:, 0]), [np.r_[[[1.0] * 29 + [9.0]]]], seed=0)
    assert 0 < sometimes.describe()["undefined_resamples"] < RESAMPLES


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"resamples": 0}, "resamples = 0"),
        ({"confidence": 1.5}, "confidence = 1.5"),
    ],
)
def test_bad_arguments_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        prompt_bootstrap(lambda agg: agg[:, 0], [PARTS[0]], **kwargs)


def test_parts_of_different_shapes_are_refused():
    with pytest.raises(ValueError, match="arrays of one shape"):
        prompt_bootstrap(lambda a, b: a[:, 0], [PARTS[0], PARTS[0][:, :10]])
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        prompt_bootstrap(lambda agg: agg[:3, 0], [PARTS[0]])
