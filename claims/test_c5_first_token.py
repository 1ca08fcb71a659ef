"""C5 (§3.2): counting the first token makes Δ about ten times larger.

Factors within FACTOR_BAND of 1 are left out of the drawn ones: the claim is about a visible change.
"""

import pytest
from hypothesis import given

from harness.checks import drawn_factors, note_factors
from harness.judgement import judge_c5


@pytest.mark.claim("C5")
@pytest.mark.parametrize("factor", note_factors())
def test_C5_first_token_dominates(factor, measure, claim_check):
    claim_check.applicable("C5")
    prof = measure(factor)
    claim_check.note("C5", judge_c5(prof), factor=factor, profile=prof)


@pytest.mark.claim("C5")
def test_C5_first_token_dominates_drawn(measure, claim_check):
    claim_check.applicable("C5")

    @given(factor=drawn_factors())
    def run(factor):
        claim_check.example("C5", judge_c5(measure(factor)), factor)

    claim_check.hypothesis("C5", run)
