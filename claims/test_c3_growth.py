"""C3 (§3.1, §4): from the scaled block on Δ keeps increasing, not linearly.

Not applicable at a layer within three blocks of the end: there is no growth left to judge.
Factors within FACTOR_BAND of 1 are left out of the drawn ones: the claim is about a visible change.
"""

import pytest
from hypothesis import given

from harness.judge.judgement import judge_c3
from harness.suite.checks import drawn_factors, note_factors


def growth_span(subject, layer):
    """C3 is judged from block L to block N−2 (the site before the final one), its bend on at least three sites."""
    last = subject.n_blocks - 2
    if last - layer + 1 >= 3:
        return None
    if subject.n_blocks < 4:
        return (
            f"{subject.name} is too shallow for C3: it has {subject.n_blocks} block(s), and growth is judged on three sites "
            "from the scaled block to block N−2, which needs at least 4 blocks"
        )
    return (
        f"growth is judged on blocks {layer} to {last} (the site before the final one), {max(0, last - layer + 1)} site(s) "
        f"at this layer, and telling a curve from a line needs three: give a layer of at most {subject.n_blocks - 4}"
    )


pytestmark = pytest.mark.claim("C3", applies=growth_span)


@pytest.mark.parametrize("factor", note_factors())
def test_C3_growth_after_intervention(factor, measure, claim_check):
    prof = measure(factor)
    claim_check.note(judge_c3(prof, seed=claim_check.seed), factor=factor, profile=prof)


def test_C3_growth_after_intervention_drawn(measure, claim_check):
    @given(factor=drawn_factors())
    def run(factor):
        claim_check.example(judge_c3(measure(factor), seed=claim_check.seed), factor)

    claim_check.hypothesis(run)
