"""C3 (§3.1, §4): from the scaled block on Δ keeps increasing, not linearly.

Factors within FACTOR_BAND of 1 are left out of the drawn ones: the claim is about a visible change.
"""

import pytest
from hypothesis import given

from harness.checks import drawn_factors, note_factors
from harness.judgement import judge_c3


@pytest.mark.claim("C3")
@pytest.mark.parametrize("factor", note_factors())
def test_C3_growth_after_intervention(factor, measure, claim_check):
    claim_check.applicable("C3")
    prof = measure(factor)
    claim_check.note("C3", judge_c3(prof), factor=factor, profile=prof)


@pytest.mark.claim("C3")
def test_C3_growth_after_intervention_drawn(measure, claim_check):
    claim_check.applicable("C3")

    @given(factor=drawn_factors())
    def run(factor):
        claim_check.example("C3", judge_c3(measure(factor)), factor)

    claim_check.hypothesis("C3", run)
