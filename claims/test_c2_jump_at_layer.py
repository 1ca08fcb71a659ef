"""C2 (§3.1): at the scaled block Δ jumps from about zero to a large value.

Factors within FACTOR_BAND of 1 are left out of the drawn ones: the claim is about a visible change.
"""

import pytest
from hypothesis import given

from harness.judge.judgement import judge_c2
from harness.suite.checks import drawn_factors, note_factors

pytestmark = pytest.mark.claim("C2")


@pytest.mark.parametrize("factor", note_factors())
def test_C2_jump_at_layer(factor, measure, claim_check):
    prof = measure(factor)
    claim_check.note(judge_c2(prof, seed=claim_check.seed), factor=factor, profile=prof)


def test_C2_jump_at_layer_drawn(measure, claim_check):
    @given(factor=drawn_factors())
    def run(factor):
        claim_check.example(judge_c2(measure(factor), seed=claim_check.seed), factor)

    claim_check.hypothesis(run)
