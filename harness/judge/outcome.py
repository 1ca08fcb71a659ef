"""The claim outcome: what one claim test hands the report and `--update-expectations`, as one record.

    outcome = ClaimOutcome.measured(verdict, claim, expectation, nodeid=item.nodeid, model="minilm", layer=2,
                                    source="note", factor=0.5)
    text = outcome.to_json()                       # strict JSON: inf/nan spelled "inf", "-inf", "nan"
    ClaimOutcome.from_json(text) == outcome        # the round trip is exact
    status_of("refuted", "refuted")                # "refuted as expected"
    status_of("refuted", FINDING)                  # "finding: refuted" (recorded and shown, never a failure)

A claim test attaches `to_json()` to its item as the user property PROPERTY, so it travels under
pytest-xdist; `harness.report.collect` reads it back with `from_json` once. The record carries
the claim's wording and the thresholds its verdict used, so an old JSON re-renders as it was.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.judge.verdict import HOLDS, NOT_APPLICABLE, REFUTED, VERDICTS, Verdict

PROPERTY = "claim_outcome"  # the user property's name

# An expectation that judges nothing: the verdict is recorded and shown, and never fails its test. Held by
# the layer map's layers other than the judged one, and by a model without a section for its empirical claims.
FINDING = "finding"

# What the report calls an item, most serious first; a claim's status is the most serious of its items'.
# Findings come after every judged status: a judged item decides its claim's status whenever there is one.
ERROR, REFUTED_STATUS, UNEXPECTED_PASS, NOT_RUN = "error", "refuted", "unexpected pass", "not run"
REFUTED_AS_EXPECTED, HOLDS_STATUS, NOT_APPLICABLE_STATUS = "refuted as expected", "holds", "not applicable"
FINDING_REFUTED, FINDING_HOLDS = f"{FINDING}: refuted", f"{FINDING}: holds"
STATUSES = (
    ERROR, REFUTED_STATUS, UNEXPECTED_PASS, NOT_RUN, REFUTED_AS_EXPECTED, HOLDS_STATUS, FINDING_REFUTED, FINDING_HOLDS,
    NOT_APPLICABLE_STATUS,
)  # fmt: skip

REQUIRED_KEYS = ("claim", "verdict", "expected", "status", "margin", "margin_text", "reason", "evidence")


class OutcomeError(ValueError):
    """A claim outcome that cannot be read: not a JSON string, not an object, or missing keys."""


def status_of(verdict: str, expected: str) -> str:
    """The status of a measured verdict against its expectation (the rule, stated once)."""
    if NOT_APPLICABLE in (verdict, expected):
        return NOT_APPLICABLE_STATUS
    if expected == FINDING:
        return FINDING_HOLDS if verdict == HOLDS else FINDING_REFUTED
    if verdict == HOLDS:
        return HOLDS_STATUS if expected == HOLDS else UNEXPECTED_PASS
    return REFUTED_AS_EXPECTED if expected == REFUTED else REFUTED_STATUS


def finite(value: object) -> object:
    """`value` as plain JSON data, every non-finite float spelled "inf", "-inf" or "nan" (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):  # numpy arrays and scalars
        return finite(value.tolist())
    return value


@dataclass(frozen=True)
class Example:
    """One Hypothesis example of a property test: its drawn values and its own verdict."""

    factor: float
    verdict: str
    status: str
    margin: float | None
    margin_text: str
    params: Mapping[str, object] = field(default_factory=dict)  # other drawn values, e.g. {"layer": 3}

    def to_dict(self) -> dict[str, object]:
        return finite({"factor": self.factor, **self.params, "verdict": self.verdict, "status": self.status,
                       "margin": self.margin, "margin_text": self.margin_text})  # type: ignore[return-value]  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Example:
        known = ("factor", "verdict", "status", "margin", "margin_text")
        return cls(*(data.get(k) for k in known), params={k: v for k, v in data.items() if k not in known})


@dataclass(frozen=True)
class ClaimOutcome:
    """One claim test's outcome; see the module docstring. Plain JSON data inside (lists, not tuples)."""

    claim: str
    verdict: str  # measured: one of harness.judge.verdict.VERDICTS
    expected: str  # the expectation it was held to
    status: str  # status_of(verdict, expected), or "not applicable"
    margin: float | None  # > 0: held with that much room; None: not finite
    margin_text: str
    reason: str
    evidence: dict[str, object] = field(default_factory=dict)  # JSON-ready numbers, non-finite spelled out
    # what the claim says and how it was judged, as the run knew it
    section: str = ""
    title: str = ""
    statement: str = ""
    test: str = ""
    thresholds: dict[str, object] = field(default_factory=dict)
    statistic_name: str = ""  # the statistic in words (Claim.statistic)
    needs: str = ""  # how the statistic compares with its threshold (Claim.needs)
    figure: str = ""  # what the report draws for the claim (Claim.figure)
    layer_map: bool = False  # judged at every layer of --layers (Claim.layer_map)
    intervention_map: bool = False  # judged under every kind of --interventions (Claim.intervention_map)
    empirical: bool | None = None
    derived: str = ""
    # where and how it was measured
    nodeid: str = ""
    model: str = ""
    layer: int | None = None
    intervention: str = "scale"  # the kind it was measured under (harness.intervene.kinds; the run record has the rest)
    under: str = ""  # what the claim's rule means under that intervention (Claim.meaning_under); "" under the note's scaling
    source: str = "note"  # "note": one of the note's factors; "hypothesis": drawn examples; "applicability"
    factor: float | None = None
    expectation_reason: str = ""
    # how sure the verdict is (harness.judge.verdict.Verdict), None where not measured
    statistic: float | str | None = None
    threshold: float | str | None = None
    ci95: tuple[float | str | None, float | str | None] | None = None
    fragile: bool | None = None
    examples: tuple[Example, ...] = ()

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise OutcomeError(f"status {self.status!r} is not one of {', '.join(STATUSES)}")
        if self.verdict not in VERDICTS:
            raise OutcomeError(f"verdict {self.verdict!r} is not one of {', '.join(VERDICTS)}")
        for name in ("evidence", "thresholds", "margin", "statistic", "threshold"):
            object.__setattr__(self, name, finite(getattr(self, name)))
        if self.ci95 is not None:
            object.__setattr__(self, "ci95", tuple(finite(list(self.ci95))))
        object.__setattr__(self, "examples", tuple(e if isinstance(e, Example) else Example.from_dict(e) for e in self.examples))

    @classmethod
    def measured(
        cls,
        verdict: Verdict,
        claim: object,
        expected: str,
        *,
        expectation_reason: str = "",
        nodeid: str = "",
        model: str = "",
        layer: int | None = None,
        intervention: object | None = None,
        source: str = "note",
        factor: float | None = None,
        evidence: Mapping[str, object] | None = None,
        examples: tuple[Example, ...] = (),
    ) -> ClaimOutcome:
        """The outcome of `verdict` held to `expected`, with the wording and thresholds of `claim` (its Claim record);
        `intervention`: the InterventionSpec it was measured under (None: the note's scaling)."""
        meta = claim
        spec = intervention
        return cls(
            claim=verdict.claim,
            verdict=verdict.verdict,
            expected=expected,
            status=status_of(verdict.verdict, expected),
            margin=verdict.margin,
            margin_text=verdict.margin_text,
            reason=verdict.reason,
            evidence={**verdict.evidence, **(evidence or {})},
            section=meta.section,
            title=meta.title,
            statement=meta.statement,
            test=meta.test,
            thresholds=meta.threshold_values(),
            statistic_name=meta.statistic,
            needs=meta.needs,
            figure=meta.figure,
            layer_map=meta.layer_map,
            intervention_map=meta.intervention_map,
            empirical=meta.empirical,
            derived=meta.derived,
            nodeid=nodeid,
            model=model,
            layer=layer,
            intervention="scale" if spec is None else spec.kind,
            under="" if spec is None or spec == type(spec)() else meta.meaning_under(spec),
            source=source,
            factor=factor,
            expectation_reason=expectation_reason,
            statistic=verdict.statistic,
            threshold=verdict.threshold,
            ci95=verdict.ci95,
            fragile=verdict.fragile,
            examples=examples,
        )

    def to_dict(self) -> dict[str, object]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["ci95"] = None if self.ci95 is None else list(self.ci95)
        out["examples"] = [e.to_dict() for e in self.examples]
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: object) -> ClaimOutcome:
        if not isinstance(data, dict):
            raise OutcomeError(f"{PROPERTY} must be a JSON object; got {type(data).__name__}")
        missing = [k for k in REQUIRED_KEYS if k not in data]
        if missing:
            raise OutcomeError(f"{PROPERTY} lacks {', '.join(missing)}: build it with harness.judge.outcome.ClaimOutcome")
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in data.items() if k in names}  # keys of a newer format are ignored
        known["examples"] = tuple(Example.from_dict(e) for e in data.get("examples") or ())
        if known.get("ci95") is not None:
            known["ci95"] = tuple(known["ci95"])
        return cls(**known)

    @classmethod
    def from_json(cls, value: object) -> ClaimOutcome:
        """The record from its user property; OutcomeError says what is wrong with it."""
        if not isinstance(value, str):
            raise OutcomeError(f"{PROPERTY} must be a JSON string so it travels under xdist; got a {type(value).__name__}: {value!r:.200}")
        try:
            data = json.loads(value)
        except json.JSONDecodeError as exc:
            raise OutcomeError(f"{PROPERTY} is not valid JSON ({exc}): {value[:200]!r}") from exc
        return cls.from_dict(data)
