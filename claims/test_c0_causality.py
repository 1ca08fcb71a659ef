"""C0 (§1): scaling block n changes every later site and never an earlier one, for every n.

C0 is structural (a property of the computation graph, not of what the weights learned), and it
needs one profile per block, so it runs on the first C0_PROMPTS prompts of the corpus.
Drawn examples pick a block and a factor outside the band around 1 (a factor of 1 changes nothing).
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import CleanPass
from harness.judge.judgement import judge_c0
from harness.suite.checks import drawn_factors, note_factors, profiles

pytestmark = pytest.mark.claim("C0")

C0_PROMPTS = 8


@pytest.fixture(scope="module")
def c0_profiles(subject, prompts, settings):
    """(block n, factors) -> profile with block n scaled, per prompt (the interval resamples these prompts jointly
    across the blocks), on the first C0_PROMPTS prompts."""
    return profiles(subject, lambda: CleanPass(subject, prompts[:C0_PROMPTS], settings.memory_budget_mb), settings)


@pytest.mark.parametrize("factor", note_factors())
def test_C0_causality_across_depth(factor, subject, c0_profiles, claim_check):
    by_block = {layer: c0_profiles(layer, (factor,)) for layer in range(subject.n_blocks)}
    claim_check.note(judge_c0(by_block, dtype=subject.dtype_name, seed=claim_check.seed), factor=factor, profile=None)


def test_C0_causality_across_depth_drawn(subject, c0_profiles, claim_check):
    @given(layer=st.integers(min_value=0, max_value=subject.n_blocks - 1), factor=drawn_factors())
    def run(layer, factor):
        verdict = judge_c0({layer: c0_profiles(layer, (factor,))}, dtype=subject.dtype_name, seed=claim_check.seed)
        claim_check.example(verdict, factor, layer=layer)

    claim_check.hypothesis(run)
