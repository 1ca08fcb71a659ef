"""C6 (§4, derived from the conclusion): scaling block L changes the next-token predictions materially.

Needs an LM head: not applicable on a checkpoint without one (all-MiniLM-L6-v2), and on random-gpt2
by expectation (an empirical claim about trained weights). The profiles come from this module's own
clean pass with predictions (the session's clean pass holds hidden states only), made on first use.
The note-factor items carry, once per session and from the same clean pass, a dose-response curve
over DOSE_GRID and the KL at the note factor with each block scaled in turn.
Factors within FACTOR_BAND of 1 are left out of the drawn ones: the claim is about a visible change.
"""

from collections.abc import Callable

import pytest
from hypothesis import given

from harness import CleanPass
from harness.judge.judgement import judge_c6
from harness.suite.checks import drawn_factors, note_factors, prediction_curves, profiles


def has_head(subject, layer):
    """C6 reads the model's predictions: it needs the checkpoint's LM head."""
    return None if subject.head is not None else f"{subject.name} has {subject.head_note}"


pytestmark = pytest.mark.claim("C6", applies=has_head)


@pytest.fixture(scope="module")
def predicting(subject, tokens, settings) -> Callable:
    """predicting(layer, factors) -> Profile with predictions, per prompt, cached; the clean pass is made on first use
    (never before claim_check has skipped a subject without a head)."""
    return profiles(
        subject,
        lambda: CleanPass(subject, tokens, settings.memory_budget_mb, predictions=True),
        settings,
        predictions=True,
        include_first_token=settings.include_first_token,
    )


@pytest.fixture(scope="module")
def c6_curves(subject, settings, predicting) -> Callable:
    """curves(factor) -> {"dose_response": ..., "kl_by_layer": ...} (harness.suite.checks.prediction_curves), cached."""
    cache: dict[float, dict[str, object]] = {}

    def run(factor: float) -> dict[str, object]:
        if factor not in cache:
            cache[factor] = prediction_curves(predicting, settings.layer, subject.n_blocks, factor)
        return cache[factor]

    return run


@pytest.mark.parametrize("factor", note_factors())
def test_C6_predictions_change(factor, settings, predicting, c6_curves, claim_check):
    prof = predicting(settings.layer, (factor,))
    claim_check.note(judge_c6(prof, seed=claim_check.seed), factor=factor, profile=prof, evidence=c6_curves(factor))


def test_C6_predictions_change_drawn(settings, predicting, claim_check):
    @given(factor=drawn_factors())
    def run(factor):
        claim_check.example(judge_c6(predicting(settings.layer, (factor,)), seed=claim_check.seed), factor)

    claim_check.hypothesis(run)
