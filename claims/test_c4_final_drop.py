"""C4 (§3.3, §4): at the last site before the unembedding Δ drops slightly.

Factors within FACTOR_BAND of 1 are left out of the drawn ones: the claim is about a visible change.
"""

import pytest
from hypothesis import given

from harness.checks import drawn_factors, note_factors
from harness.judgement import judge_c4


@pytest.mark.claim("C4")
@pytest.mark.parametrize("factor", note_factors())
def test_C4_drop_at_final_block(factor, measure, claim_check):
    claim_check.applicable("C4")
    prof = measure(factor)
    claim_check.note("C4", judge_c4(prof), factor=factor, profile=prof)


@pytest.mark.claim("C4")
def test_C4_drop_at_final_block_drawn(measure, claim_check):
    claim_check.applicable("C4")

    @given(factor=drawn_factors())
    def run(factor):
        claim_check.example("C4", judge_c4(measure(factor)), factor)

    claim_check.hypothesis("C4", run)
