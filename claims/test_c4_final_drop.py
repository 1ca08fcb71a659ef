"""C4 (§3.3, §4): at the last site before the unembedding Δ drops slightly.

Not applicable when the scaled block is the last one: nothing before the final site moved.
Factors within FACTOR_BAND of 1 are left out of the drawn ones: the claim is about a visible change.
"""

import pytest
from hypothesis import given

from harness.judge.judgement import judge_c4
from harness.suite.checks import drawn_factors, note_factors


def drop_after_layer(subject, layer):
    """C4 compares the final site with block N−2, which must come at or after the scaled block."""
    if layer <= subject.n_blocks - 2:
        return None
    if subject.n_blocks < 2:
        return (
            f"{subject.name} is too shallow for C4: it has {subject.n_blocks} block, and the drop is read from block N−2 "
            "to the final site, which needs at least 2 blocks"
        )
    return (
        f"the drop is read from block {subject.n_blocks - 2} to the final site, and block {subject.n_blocks - 2} comes "
        f"before the scaled block {layer} (Δ = 0 there): give a layer of at most {subject.n_blocks - 2}"
    )


pytestmark = pytest.mark.claim("C4", applies=drop_after_layer)


@pytest.mark.parametrize("factor", note_factors())
def test_C4_drop_at_final_block(factor, measure, claim_check):
    prof = measure(factor)
    claim_check.note(judge_c4(prof, seed=claim_check.seed), factor=factor, profile=prof)


def test_C4_drop_at_final_block_drawn(measure, claim_check):
    @given(factor=drawn_factors())
    def run(factor):
        claim_check.example(judge_c4(measure(factor), seed=claim_check.seed), factor)

    claim_check.hypothesis(run)
