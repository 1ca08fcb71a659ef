"""Claim checks: turn a Verdict into a test result and a claim outcome record.

    pytestmark = pytest.mark.claim("C3", applies=growth_steps)     # the claim id, once per module

    def test_C3_growth_after_intervention(factor, measure, claim_check):
        prof = measure(factor)
        claim_check.note(judge_c3(prof), factor=factor, profile=prof)

The `claim_check` fixture (harness.suite.plugin) reads the claim id from the `claim` marker and skips,
recording why, a claim that is not applicable: expected so on this model, or whose sites do not
exist at this layer (the marker's `applies(subject, layer) -> reason | None`). `note` attaches the
outcome (harness.judge.outcome.ClaimOutcome) to the test item and then fails the test when the verdict
differs from the expectation, in either direction; a finding (harness.judge.outcome.FINDING: a layer-map
layer, or an empirical claim on a model without a section) is recorded and never fails. `hypothesis` does the same for a property test
over drawn factors, keeping every example tried with its own verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pytest

from harness.judge.expectations import Expectation
from harness.judge.judgement import HOLDS, NOT_APPLICABLE, Verdict
from harness.judge.outcome import FINDING, PROPERTY, ClaimOutcome, Example, status_of
from harness.settings import Settings

Applies = Callable[[object, int], str | None]  # (subject, layer) -> why the claim does not apply, or None


@dataclass
class ClaimCheck:
    node: pytest.Item
    claim: str
    expectation: Expectation
    settings: Settings
    tried: list[tuple[Example, Verdict]] = field(default_factory=list)  # Hypothesis examples, each with its own verdict

    def skip_unless_applicable(self, subject: object, applies: Applies | None) -> None:
        """Record and skip when the claim is not applicable: by its expectation, or at this layer."""
        why = applies(subject, self.settings.layer) if applies is not None else None
        if why is None and self.expectation.verdict != NOT_APPLICABLE:
            return
        reason = why or self.expectation.reason
        verdict = Verdict(self.claim, NOT_APPLICABLE, 0.0, "", reason)
        self._record(verdict, "applicability", None, expected=NOT_APPLICABLE if why else self.expectation.verdict)
        where = f" at layer {self.settings.layer}" if why else ""
        pytest.skip(f"{self.claim} is not applicable to {self.settings.model}{where}: {reason}")

    @property
    def seed(self) -> int:
        """The run's seed, for the judges' bootstrap intervals: the same seed gives the same interval."""
        return self.settings.seed

    def note(self, verdict: Verdict, *, factor: float | None, profile: object | None, evidence: Mapping[str, object] | None = None) -> None:
        """Record and assert one verdict at one of the note's factors; `evidence` adds to the verdict's."""
        extra = dict(evidence or {})
        if profile is not None:
            extra["profile"] = profile.to_dict()
        self._record(verdict, "note", factor, evidence=extra)
        self._assert(verdict, f"factor {factor}")

    def example(self, verdict: Verdict, factor: float, **params: object) -> None:
        """One Hypothesis example: kept with its own verdict, asserted against the expectation."""
        status = status_of(verdict.verdict, self.expectation.verdict)
        self.tried.append((Example(factor, verdict.verdict, status, verdict.margin, verdict.margin_text, params), verdict))
        self._assert(verdict, f"factor {factor}" + "".join(f", {k} {v}" for k, v in params.items()))

    def hypothesis(self, run: Callable[[], None]) -> None:
        """Run a @given-wrapped function, then record every example tried (also when one failed).

        The record shows the first example off its expectation, else the one closest to its
        threshold (least margin), with that example's own verdict, reason and evidence.
        """
        try:
            run()
        finally:
            if self.tried:
                off = [(e, v) for e, v in self.tried if v.verdict != self.expectation.verdict and self.expectation.verdict != FINDING]
                _, own = off[0] if off else min(self.tried, key=lambda t: t[1].margin if t[1].margin is not None else float("inf"))
                margins = [v.margin for _, v in self.tried if v.margin is not None]
                summary = Verdict(
                    self.claim,
                    own.verdict,
                    min(margins, default=0.0),
                    f"{len(self.tried)} drawn examples; " + ("first off expectation: " if off else "closest: ") + own.margin_text,
                    own.reason,
                    own.evidence,
                    own.statistic,
                    own.threshold,
                    own.ci95,
                    own.fragile,
                )
                self._record(summary, "hypothesis", None, examples=tuple(e for e, _ in self.tried))

    # -----------------------------------------------------------------------------------------

    def _assert(self, verdict: Verdict, where: str) -> None:
        expected = self.expectation
        if expected.verdict != FINDING and verdict.verdict != expected.verdict:
            word = "unexpected pass" if verdict.verdict == HOLDS else "refuted"
            pytest.fail(
                f"{self.claim} {word} on {self.settings.model} at {where}: measured {verdict.verdict!r}, expected "
                f"{expected.verdict!r} ({expected.where}: {expected.reason}).\n  why: {verdict.reason}\n  margin: {verdict.margin_text}",
                pytrace=False,
            )

    def _record(
        self,
        verdict: Verdict,
        source: str,
        factor: float | None,
        *,
        expected: str | None = None,
        evidence: Mapping[str, object] | None = None,
        examples: tuple[Example, ...] = (),
    ) -> None:
        if verdict.claim != self.claim:
            raise ValueError(f"{self.node.nodeid} is marked claim({self.claim!r}) but judged {verdict.claim}: mark it with its claim")
        outcome = ClaimOutcome.measured(
            verdict,
            expected or self.expectation.verdict,
            expectation_reason=self.expectation.reason,
            nodeid=self.node.nodeid,
            model=self.settings.model,
            layer=self.settings.layer,
            source=source,
            factor=factor,
            evidence=evidence,
            examples=examples,
        )
        self.node.user_properties.append((PROPERTY, outcome.to_json()))


def note_factors() -> list[float]:
    """The note's factors (§2), as pytest parameters."""
    from harness.settings import NOTE_FACTORS

    return list(NOTE_FACTORS)


def drawn_factors(keep_band: bool = True):
    """Factors in [0.5, 1.5], the note's range (§3.3). With keep_band, |1 − s| < FACTOR_BAND is left out:
    claims about a visible change cannot hold when the scaling is (nearly) the identity."""
    from hypothesis import strategies as st

    from harness.judge.judgement import FACTOR_BAND

    factors = st.floats(min_value=0.5, max_value=1.5, allow_nan=False, allow_infinity=False)
    return factors.filter(lambda s: abs(1.0 - s) >= FACTOR_BAND) if keep_band else factors


def token_norms(prof: object) -> dict[str, object]:
    """C5's explanation (§3.2) as evidence: the first token's clean norm against the other tokens', per site."""
    return {
        "sites": list(prof.sites),
        "first_token_norm": [float(v) for v in prof.first_token_norm],
        "other_token_norm": [float(v) for v in prof.other_token_norm],
    }


def profiles(
    subject: object, clean: Callable[[], object], settings: Settings, **options: object
) -> Callable[[int, Sequence[float]], object]:
    """measure(layer, factors) -> Profile over `clean()`'s corpus, per prompt, cached by (layer, factors).

    `clean` makes the clean pass (harness.CleanPass) on the first measurement, so a module whose
    claim is skipped never runs it; `options` go to harness.profile (predictions=True, ...).
    """
    from harness import profile

    made: list[object] = []
    cache: dict[tuple[int, tuple[float, ...]], object] = {}

    def measure(layer: int, factors: Sequence[float]) -> object:
        key = (layer, tuple(factors))
        if key not in cache:
            if not made:
                made.append(clean())
            spec = settings.intervention_spec()  # the note's factors f measured as the kind's strengths (Kind.from_note)
            cache[key] = profile(
                subject,
                None,
                layer,
                [spec.kind_row.from_note(f) for f in factors],
                per_prompt=True,
                clean=made[0],
                memory_budget_mb=settings.memory_budget_mb,
                factor_batch=settings.factor_batch,
                intervention=spec,
                **options,
            )
        return cache[key]

    return measure


# C6's evidence grid: 0.5, 0.6, …, 1.5, factor 1 and the band's edges included (the document contract)
DOSE_GRID = tuple(round(0.5 + 0.1 * i, 1) for i in range(11))


def prediction_curves(measure: Callable[[int, tuple[float, ...]], object], layer: int, n_blocks: int, factor: float) -> dict[str, object]:
    """C6's evidence: the dose-response over DOSE_GRID at `layer`, and the KL at `factor` with each block scaled.

    `measure(layer, factors)` returns a Profile made with predictions=True (one clean pass for all).
    """
    dose = measure(layer, DOSE_GRID)
    return {
        "dose_response": {
            "factors": list(DOSE_GRID),
            "kl": _listed(dose.kl),
            "top1_agreement": _listed(dose.top1_agreement),
            "nll_change": _listed(dose.nll_change),
        },
        "kl_by_layer": {
            "layers": list(range(n_blocks)),
            "kl": [_listed(measure(n, (factor,)).kl)[0] for n in range(n_blocks)],
            "factor": factor,
        },
    }


def _listed(values: object) -> list[float | None]:
    """JSON-ready floats; None for a value not measured (nll_change of a masked LM) or not finite."""
    import numpy as np

    return [] if values is None else [float(v) if np.isfinite(v) else None for v in values]
