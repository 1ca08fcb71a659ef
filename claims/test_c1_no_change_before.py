"""C1 (§3.1): before the scaled block (embedding, blocks 0 … L−1) Δ is essentially zero.

Any factor qualifies, also near 1: nothing upstream may move whatever the scaling.
"""

import pytest
from hypothesis import given

from harness.judge.judgement import judge_c1
from harness.suite.checks import drawn_factors, note_factors

pytestmark = pytest.mark.claim("C1")


@pytest.mark.parametrize("factor", note_factors())
def test_C1_no_change_before_layer(factor, subject, measure, claim_check):
    prof = measure(factor)
    claim_check.note(judge_c1(prof, dtype=subject.dtype_name, seed=claim_check.seed), factor=factor, profile=prof)


def test_C1_no_change_before_layer_drawn(subject, measure, claim_check):
    @given(factor=drawn_factors(keep_band=False))
    def run(factor):
        claim_check.example(judge_c1(measure(factor), dtype=subject.dtype_name, seed=claim_check.seed), factor)

    claim_check.hypothesis(run)
