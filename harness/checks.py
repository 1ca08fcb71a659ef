"""Claim checks: turn a Verdict into a test result and a report record.

    def test_C3_growth_after_intervention(factor, measure, claim_check):
        prof = measure(factor)
        claim_check.note("C3", judge_c3(prof), factor=factor, profile=prof)

`note` records the outcome on the test item (as a JSON string in `user_properties`, so it travels
under pytest-xdist) and then fails the test when the verdict differs from the model's
expectation, in either direction; an expected `not-applicable` skips. `hypothesis` does the same
for a property test over drawn factors, recording every example tried.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from harness.expectations import Expectation
from harness.judgement import CLAIMS, HOLDS, NOT_APPLICABLE, THRESHOLDS, Verdict
from harness.profile import Profile
from harness.settings import Settings

STATUS = {  # (measured verdict, expected verdict) -> what the report calls it
    (HOLDS, HOLDS): "holds",
    ("refuted", "refuted"): "refuted as expected",
    (HOLDS, "refuted"): "unexpected pass",
    ("refuted", HOLDS): "refuted",
}


@dataclass
class ClaimCheck:
    node: pytest.Item
    expectations: dict[str, Expectation]
    settings: Settings
    examples: list[dict] = field(default_factory=list)  # Hypothesis examples tried, for the record
    last: Verdict | None = None  # the latest example's verdict

    def applicable(self, claim: str) -> None:
        """Skip (and record) a claim whose expectation on this model is not-applicable."""
        expected = self.expectations[claim]
        if expected.verdict == NOT_APPLICABLE:
            self._record(claim, Verdict(claim, NOT_APPLICABLE, 0.0, "", expected.reason), "note", None, None)
            pytest.skip(f"{claim} is not applicable to {self.settings.model}: {expected.reason}")

    def note(self, claim: str, verdict: Verdict, *, factor: float | None, profile: Profile | None) -> None:
        """Record and assert one verdict at one of the note's factors."""
        self._record(claim, verdict, "note", factor, profile)
        self._assert(claim, verdict, f"factor {factor}")

    def example(self, claim: str, verdict: Verdict, factor: float, **params: object) -> None:
        """One Hypothesis example: remembered for the record, asserted against the expectation."""
        expected = self.expectations[claim].verdict
        self.examples.append(
            {
                "factor": factor,
                **params,
                "verdict": verdict.verdict,
                "status": STATUS.get((verdict.verdict, expected), verdict.verdict),
                "margin": verdict.margin,
                "margin_text": verdict.margin_text,
            }
        )
        self.last = verdict
        self._assert(claim, verdict, f"factor {factor}" + "".join(f", {k} {v}" for k, v in params.items()))

    def hypothesis(self, claim: str, run: Callable[[], None]) -> None:
        """Run a @given-wrapped function, then record every example tried (also when one failed)."""
        try:
            run()
        finally:
            failed = [e for e in self.examples if e["verdict"] != self.expectations[claim].verdict]
            shown = failed[0] if failed else (self.examples[-1] if self.examples else None)
            verdict = self.last
            if shown is not None and verdict is not None:
                summary = Verdict(
                    claim,
                    shown["verdict"],
                    min((e["margin"] for e in self.examples if e["margin"] is not None), default=0.0),
                    f"{len(self.examples)} drawn factors; " + ("first off expectation: " if failed else "last: ") + shown["margin_text"],
                    verdict.reason,
                    verdict.evidence,
                )
                self._record(claim, summary, "hypothesis", None, None)

    # -----------------------------------------------------------------------------------------

    def _assert(self, claim: str, verdict: Verdict, where: str) -> None:
        expected = self.expectations[claim]
        if verdict.verdict != expected.verdict:
            word = "unexpected pass" if verdict.verdict == HOLDS else "refuted"
            pytest.fail(
                f"{claim} {word} on {self.settings.model} at {where}: measured {verdict.verdict!r}, expected "
                f"{expected.verdict!r} ({expected.reason}).\n  why: {verdict.reason}\n  margin: {verdict.margin_text}",
                pytrace=False,
            )

    def _record(self, claim: str, verdict: Verdict, source: str, factor: float | None, profile: Profile | None) -> None:
        meta = CLAIMS[claim]
        expected = self.expectations[claim]
        evidence = dict(verdict.evidence)
        if profile is not None:
            evidence["profile"] = profile.to_dict()
        outcome = {
            "claim": claim,
            "section": meta.section,
            "title": meta.title,
            "statement": meta.statement,
            "test": meta.test,
            "nodeid": self.node.nodeid,
            "model": self.settings.model,
            "layer": self.settings.layer,
            "source": source,
            "factor": factor,
            "verdict": verdict.verdict,
            "expected": expected.verdict,
            "expectation_reason": expected.reason,
            "status": "not applicable" if verdict.verdict == NOT_APPLICABLE else STATUS[(verdict.verdict, expected.verdict)],
            "margin": verdict.margin,
            "margin_text": verdict.margin_text,
            "reason": verdict.reason,
            "thresholds": THRESHOLDS,
            "evidence": evidence,
            "examples": list(self.examples),
        }
        try:
            text = json.dumps(outcome, allow_nan=False, ensure_ascii=False)
        except (TypeError, ValueError) as exc:  # fail loudly: the report must never lose evidence silently
            raise TypeError(f"{claim}: the outcome of {self.node.nodeid} cannot travel as JSON ({exc}); fix the evidence") from exc
        self.node.user_properties.append(("claim_outcome", text))


def note_factors() -> list[float]:
    """The note's factors (§2), as pytest parameters."""
    from harness.settings import NOTE_FACTORS

    return list(NOTE_FACTORS)


def drawn_factors(keep_band: bool = True):
    """Factors in [0.5, 1.5], the note's range (§3.3). With keep_band, |1 − s| < FACTOR_BAND is left out:
    claims about a visible change cannot hold when the scaling is (nearly) the identity."""
    from hypothesis import strategies as st

    from harness.judgement import FACTOR_BAND

    factors = st.floats(min_value=0.5, max_value=1.5, allow_nan=False, allow_infinity=False)
    return factors.filter(lambda s: abs(1.0 - s) >= FACTOR_BAND) if keep_band else factors
