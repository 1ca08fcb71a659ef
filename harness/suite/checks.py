"""Claim checks: a claim's two tests, and the checker that turns each Verdict into a test result and a record.

    from harness.note.c3_growth import C3
    test_C3_growth, test_C3_growth_drawn = claim_tests(C3)   # at the note's factors; over drawn factors

The `claim_check` fixture (harness.suite.plugin) reads the claim from the `claim` marker (which
claim_tests sets) and skips, recording why, a claim that is not applicable: expected so on this
model, or whose sites do not exist at this layer (the claim's `applies(subject, layer) -> reason | None`). `note` attaches the
outcome (harness.judge.outcome.ClaimOutcome) to the test item and then fails the test when the verdict
differs from the expectation, in either direction; a finding (harness.judge.outcome.FINDING: a layer-map
layer, or an empirical claim on a model without a section) is recorded and never fails. `hypothesis` does the same for a property test
over drawn factors, keeping every example tried with its own verdict.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pytest

from harness.judge.claim import Claim, ClaimError, claim_named
from harness.judge.expectations import Expectation
from harness.judge.outcome import FINDING, PROPERTY, ClaimOutcome, Example, status_of
from harness.judge.verdict import HOLDS, NOT_APPLICABLE, Verdict
from harness.settings import Settings

Applies = Callable[[object, int], str | None]  # (subject, layer) -> why the claim does not apply, or None


@dataclass
class ClaimCheck:
    node: pytest.Item
    claim: Claim
    expectation: Expectation
    settings: Settings
    tried: list[tuple[Example, Verdict]] = field(default_factory=list)  # Hypothesis examples, each with its own verdict

    def __post_init__(self) -> None:
        self.claim = claim_named(self.claim)  # a Claim, or the id of a registered one

    def skip_unless_applicable(self, subject: object, applies: Applies | None) -> None:
        """Record and skip when the claim is not applicable: by its expectation, or at this layer."""
        why = applies(subject, self.settings.layer) if applies is not None else None
        under = self.claim.not_applicable_under(self.settings.intervention_spec()) if why is None else None
        if why is None and under is None and self.expectation.verdict != NOT_APPLICABLE:
            return
        reason = why or under or self.expectation.reason
        verdict = Verdict(self.claim.id, NOT_APPLICABLE, 0.0, "", reason)
        self._record(verdict, "applicability", None, expected=NOT_APPLICABLE if why or under else self.expectation.verdict)
        where = f" at layer {self.settings.layer}" if why else ""
        pytest.skip(f"{self.claim.id} is not applicable to {self.settings.model}{where}: {reason}")

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
                    self.claim.id,
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

    def run_note(self, run: object, factor: float) -> None:
        """Measure, judge, record and assert the claim at one of the note's factors."""
        measured = self.claim.measured(run, factor)
        verdict = self._judged(measured, run)
        extra = self.claim.evidence(run, factor, measured) if self.claim.evidence is not None else None
        self.note(verdict, factor=factor, profile=measured if hasattr(measured, "to_dict") else None, evidence=extra)

    def run_drawn(self, run: object) -> None:
        """The claim over Hypothesis-drawn factors (and whatever else the claim draws), every example recorded."""
        from hypothesis import given, seed
        from hypothesis import settings as hypothesis_settings

        drawn = dict(self.claim.draws(run.subject)) if self.claim.draws is not None else {}

        @given(factor=drawn_factors(self.claim.keep_band, self.settings.intervention), **drawn)
        def examples(factor: float, **params: object) -> None:
            self.example(self._judged(self.claim.measured(run, factor, **params), run), factor, **params)

        if hypothesis_settings.default.derandomize:
            # Derandomized Hypothesis seeds a test from its function's source, which every claim shares here:
            # one seed per claim id instead, so each claim draws its own factors, the same in every run.
            examples = seed(claim_seed(self.claim.id))(examples)
        self.hypothesis(examples)

    # -----------------------------------------------------------------------------------------

    def _judged(self, measured: object, run: object) -> Verdict:
        try:
            return self.claim.verdict(measured, run)
        except ClaimError as exc:
            pytest.fail(str(exc), pytrace=False)

    def _assert(self, verdict: Verdict, where: str) -> None:
        expected = self.expectation
        if expected.verdict != FINDING and verdict.verdict != expected.verdict:
            word = "unexpected pass" if verdict.verdict == HOLDS else "refuted"
            pytest.fail(
                f"{self.claim.id} {word} on {self.settings.model} at {where}: measured {verdict.verdict!r}, expected "
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
        if verdict.claim != self.claim.id:
            raise ValueError(f"{self.node.nodeid} is marked claim({self.claim.id!r}) but judged {verdict.claim}: mark it with its claim")
        outcome = ClaimOutcome.measured(
            verdict,
            self.claim,
            expected or self.expectation.verdict,
            expectation_reason=self.expectation.reason,
            nodeid=self.node.nodeid,
            model=self.settings.model,
            layer=self.settings.layer,
            intervention=self.settings.intervention_spec(),
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


def drawn_factors(keep_band: bool = True, intervention: str = "scale"):
    """The note's factors f in [0.5, 1.5] (§3.3). With keep_band, those whose strength lies within the band
    around the kind's identity are left out: claims about a visible change cannot hold when the edit is
    (nearly) the identity. Under scale and scale-update that is |1 − f| < FACTOR_BAND, the note's band;
    under noise, add and mean-ablate the identity is strength 0, which no f reaches, so every f is drawn."""
    from hypothesis import strategies as st

    from harness.intervene.kinds import KINDS
    from harness.note.thresholds import FACTOR_BAND

    kind = KINDS[intervention]
    factors = st.floats(min_value=0.5, max_value=1.5, allow_nan=False, allow_infinity=False)
    return factors.filter(lambda f: not kind.near_identity(f, FACTOR_BAND)) if keep_band else factors


def claim_seed(claim_id: str) -> int:
    """The Hypothesis seed of a claim's drawn factors under a derandomized profile (ci): from its id alone."""
    return int.from_bytes(hashlib.sha256(f"layer-claims drawn factors: {claim_id}".encode()).digest()[:8], "big")


def claim_tests(claim: Claim) -> tuple[Callable[..., None], Callable[..., None]]:
    """The claim's two tests: at each of the note's factors, and over drawn factors. Assign both to test_ names:

        test_growth, test_growth_drawn = claim_tests(GROWTH)
    """

    @pytest.mark.claim(claim)
    @pytest.mark.parametrize("factor", note_factors())
    def at_note_factors(factor: float, claim_check: ClaimCheck, claim_run: object) -> None:
        claim_check.run_note(claim_run, factor)

    @pytest.mark.claim(claim)
    def over_drawn_factors(claim_check: ClaimCheck, claim_run: object) -> None:
        claim_check.run_drawn(claim_run)

    return at_note_factors, over_drawn_factors
