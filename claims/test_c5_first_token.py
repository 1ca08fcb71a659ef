"""C5 (§3.2): counting the first token makes Δ about ten times larger.

The evidence adds the first token's clean norm against the other tokens', per site (the note's explanation).
Factors within FACTOR_BAND of 1 are left out of the drawn ones: the claim is about a visible change.
"""

import pytest
from hypothesis import given

from harness.judge.judgement import judge_c5
from harness.suite.checks import drawn_factors, note_factors, token_norms

pytestmark = pytest.mark.claim("C5")


@pytest.mark.parametrize("factor", note_factors())
def test_C5_first_token_dominates(factor, measure, claim_check):
    prof = measure(factor)
    claim_check.note(judge_c5(prof, seed=claim_check.seed), factor=factor, profile=prof, evidence={"token_norms": token_norms(prof)})


def test_C5_first_token_dominates_drawn(measure, claim_check):
    @given(factor=drawn_factors())
    def run(factor):
        claim_check.example(judge_c5(measure(factor), seed=claim_check.seed), factor)

    claim_check.hypothesis(run)
