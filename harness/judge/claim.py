"""A claim is one record: what it says, the statistic it rests on, its rule and thresholds, how it is shown.

    from harness.judge.claim import Claim, Threshold

    def growth(v):                      # v.delta: (..., S); the aggregate is (S,), per prompt (P, S)
        return v.delta[..., -1] / v.delta[..., v.site(f"block.{v.layer}")]

    GROWTH = Claim("growth-to-final", "Δ grows to the final site", "Δ at the last site is at least twice Δ at block L.",
                   statistic="Δ(last site) / Δ(block L)", statistic_of=growth, needs=">=",
                   thresholds={"TWICE": Threshold(2.0, "twice: a doubling is what the note calls growth")})
    GROWTH.judge_profile(prof, 0, seed=0)     # a Verdict: holds on the aggregate and on PROMPT_SHARE of prompts

The statistic is a pure, vectorised function of a `View` of a profile at one factor: the same function
gives the verdict's statistic (on the aggregate, (S,) arrays), each prompt's value ((P, S)) and the
bootstrap distribution ((B, S) resampled aggregates). Its rule compares it with the thresholds as
`needs` says ("<=", "<", ">=", ">", or "within" two bounds); the decision (aggregate and prompt share,
interval, fragility, margin) is harness.judge.verdict's, the same for every claim.
A claim with a rule of its own (the note's C0, C2, C3, C6) gives `judge(measured, run) -> Verdict`
instead, and `measure(run, factor, **drawn)` when it judges more than one profile at the run's layer.

Under another intervention than the note's scaling (`--intervention noise`), a claim says what its
rule then means (`under`: kind -> words) or why it does not apply (`not_under`: a kind, or
"positions=first", "component=mlp" -> why); `meaning_under(spec)` and `not_applicable_under(spec)`
read them, and a claim that names neither for a kind is judged as written, s being that kind's strength.

Every Claim registers itself by id when it is made (`CLAIMS`); the suite refuses, with one line, an id
made twice from two places, a claim without a threshold, and a claim defined in a test module that
no test judges (`problems`, `defined_in`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from harness.intervene.kinds import COMPONENTS, KINDS, POSITIONS, InterventionSpec
from harness.judge.verdict import HOLDS, PROMPT_SHARE, Verdict, judge_rule
from harness.measure.record import Profile

NEEDS = ("<=", "<", ">=", ">", "within")
# What the report draws for a claim's section (harness.report.render); "" draws nothing.
FIGURES = ("", "near_layer", "prompt_distribution", "first_token_by_length", "predictions", "causality_heatmap")


class ClaimError(ValueError):
    """A claim that cannot be judged as written: the message names the claim and the fix."""


@dataclass(frozen=True)
class Threshold:
    """A number a claim's rule compares with, and why that number."""

    value: float | Mapping[str, float]  # a mapping: one value per dtype (ZERO_RELATIVE)
    reason: str


@dataclass(frozen=True)
class View:
    """A profile at one factor, as a statistic reads it: each array (..., S) over the profile's sites."""

    profile: Profile
    delta: np.ndarray  # Δ, first token excluded
    clean_norm: np.ndarray  # ‖H_clean‖ over the same tokens
    delta_all_tokens: np.ndarray  # Δ with the first token

    @property
    def sites(self) -> tuple[str, ...]:
        return self.profile.sites

    @property
    def layer(self) -> int:
        return self.profile.layer

    def site(self, name: str) -> int:
        return self.profile.site(name)

    @property
    def relative_delta(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.clean_norm > 0, self.delta / np.where(self.clean_norm > 0, self.clean_norm, 1.0), 0.0)


@dataclass(frozen=True, eq=False)
class Claim:
    """One claim; see the module docstring. Everything particular to a claim is a field here."""

    id: str
    title: str
    statement: str  # the claim in our words
    statistic: str = ""  # the number its rule compares (Verdict.statistic), in words
    needs: str = ">="  # how the statistic must compare with its threshold(s): one of NEEDS
    thresholds: Mapping[str, Threshold] = field(default_factory=dict)  # in rule order; "within": (low, high)
    section: str = ""  # where the note states it ("§3.1")
    test: str = ""  # the rule in words, thresholds named; default: made from statistic, needs and thresholds
    empirical: bool = True  # depends on trained weights (a structural claim holds for any weights)
    derived: str = ""  # where a claim the note does not state in so many words comes from
    statistic_of: Callable[[View], np.ndarray] | None = None  # the statistic, aggregate (S,) -> () and per prompt (P, S) -> (P,)
    judge: Callable[[object, object], Verdict] | None = None  # judge(measured, run) -> Verdict, for a rule of its own
    measure: Callable[..., object] | None = None  # measure(run, factor, **drawn) -> what judge reads; default: one profile
    applies: Callable[[object, int], str | None] | None = None  # (subject, layer) -> why it does not apply, or None
    evidence: Callable[[object, float, object], Mapping[str, object]] | None = None  # extra evidence on note-factor items
    draws: Callable[[object], Mapping[str, object]] | None = None  # subject -> Hypothesis strategies drawn besides the factor
    keep_band: bool = True  # drawn factors leave out |1 − s| < FACTOR_BAND (a claim about a visible change)
    figure: str = "prompt_distribution"  # one of FIGURES
    layer_map: bool = False  # judged at every layer of --layers
    intervention_map: bool = False  # judged under every kind of --interventions
    prompt_share: bool = True  # judged prompt by prompt too (PROMPT_SHARE); C0 judges its few prompts jointly
    under: Mapping[str, str] = field(default_factory=dict)  # kind (or "positions=rest", ...) -> what the rule means under it
    not_under: Mapping[str, str] = field(default_factory=dict)  # "noise", "positions=first", "component=mlp" -> why it does not apply
    defined_in: str = field(default="", compare=False)  # the file that made it (registration, messages)

    def __post_init__(self) -> None:
        if not self.defined_in:
            frame = inspect.currentframe()
            caller = frame.f_back.f_back if frame is not None and frame.f_back is not None else None  # past the dataclass __init__
            object.__setattr__(self, "defined_in", caller.f_code.co_filename if caller is not None else "")
        if not self.test:
            object.__setattr__(self, "test", self._rule_in_words())
        register(self)

    # -- what the suite asks of a claim ---------------------------------------------------------

    def problems(self) -> list[str]:
        """What makes this claim impossible to judge, one line each (empty when it can be judged)."""
        name = f"claim {self.id!r} ({self.defined_in})"
        out = []
        if self.judge is None and self.statistic_of is None:
            out.append(f"{name} has no statistic: give statistic_of=a function of a View, or judge=a rule of its own")
        if self.needs not in NEEDS:
            out.append(f"{name} needs {self.needs!r}: write one of {', '.join(NEEDS)}")
        if self.judge is None and not self.thresholds:
            out.append(f"{name} has no threshold: give thresholds={{'NAME': Threshold(value, 'why this value')}}")
        if self.needs == "within" and self.judge is None and len(self.thresholds) != 2:
            out.append(f"{name} needs 'within' two thresholds (low, high); it has {len(self.thresholds)}")
        for key, threshold in self.thresholds.items():
            values = threshold.value.values() if isinstance(threshold.value, Mapping) else [threshold.value]
            if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
                out.append(f"{name}'s threshold {key} = {threshold.value!r} is not a finite number")
        for key in [*self.under, *self.not_under]:
            if key not in _intervention_keys():
                out.append(f"{name} states its rule under {key!r}, which is no intervention: use one of {', '.join(_intervention_keys())}")
        if self.figure not in FIGURES:
            out.append(f"{name} asks for figure {self.figure!r}: choose one of {', '.join(map(repr, FIGURES))}")
        return out

    def not_applicable_under(self, spec: InterventionSpec) -> str | None:
        """Why this claim cannot be judged under `spec` (its kind, positions or component), or None."""
        for key in (spec.kind, f"positions={spec.positions}", f"component={spec.component}"):
            if key in self.not_under:
                return f"not applicable under {key if '=' in key else '--intervention ' + key}: {self.not_under[key]}"
        return None

    def meaning_under(self, spec: InterventionSpec) -> str:
        """What this claim's rule means under `spec`, in words: its `under` entry for the kind, else the rule as written."""
        kind = spec.kind_row
        words = self.under.get(spec.kind) or f"the rule as written, with s the {spec.kind} strength"
        if kind.note_scale != 1.0:
            words += f" (the note's factor f is measured as strength s = {kind.note_scale:.4g}·f)"
        if spec.positions != "all":
            generic = {"first": "only each prompt's first token is edited", "rest": "the first token is never edited"}[spec.positions]
            words += "; " + self.under.get(f"positions={spec.positions}", generic)
        if spec.component != "output":
            words += "; " + self.under.get(f"component={spec.component}", f"s acts on block L's {spec.component} write, not on its output")
        return words

    def threshold_values(self) -> dict[str, object]:
        """{name: value} of the thresholds its rule uses, PROMPT_SHARE included where prompts are judged one by one."""
        out: dict[str, object] = {k: t.value for k, t in self.thresholds.items()}
        if self.prompt_share:
            out["PROMPT_SHARE"] = PROMPT_SHARE
        return out

    def measured(self, run: object, factor: float, **drawn: object) -> object:
        """What this claim judges at `factor`: `measure`'s, else the profile at the run's layer (harness.measure.session)."""
        if self.measure is not None:
            return self.measure(run, factor, **drawn)
        return run.profile(run.layer, (factor,))

    def verdict(self, measured: object, run: object) -> Verdict:
        """The claim's verdict on what `measured` returned."""
        if self.judge is not None:
            return self.judge(measured, run)
        return self.judge_profile(measured, 0, seed=run.seed)

    def judge_profile(self, prof: Profile, factor_index: int = 0, *, seed: int = 0) -> Verdict:
        """The verdict of `statistic_of` against the thresholds, on the aggregate and on PROMPT_SHARE of the prompts."""
        if self.statistic_of is None:
            raise ClaimError(f"claim {self.id!r} has no statistic_of: it is judged by its own judge()")
        bounds = tuple(float(t.value) for t in self.thresholds.values())  # type: ignore[arg-type]

        def statistic(d: np.ndarray, c: np.ndarray, a: np.ndarray) -> np.ndarray:
            return np.asarray(self.statistic_of(View(prof, d, c, a)), dtype=np.float64)

        def rule(d: np.ndarray, c: np.ndarray, a: np.ndarray) -> bool:
            return _compare(float(statistic(d, c, a)), self.needs, bounds)

        stat = float(statistic(prof.delta[factor_index], prof.clean_norm, prof.delta_all_tokens[factor_index]))
        if not math.isfinite(stat):
            raise ClaimError(
                f"claim {self.id!r}: its statistic is {stat} on the aggregate at factor {prof.factors[factor_index]:g} "
                f"({prof.model}, layer {prof.layer}): make {getattr(self.statistic_of, '__name__', 'statistic_of')} return a "
                "finite number (guard divisions by a Δ of 0)"
            )
        holds = _compare(stat, self.needs, bounds)
        margin = _margin(stat, self.needs, bounds)
        wanted = f"{bounds[0]:g} < x ≤ {bounds[1]:g}" if self.needs == "within" else f"{self.needs} {bounds[0]:g}"
        return judge_rule(
            self.id,
            prof,
            factor_index,
            rule,
            statistic,
            threshold=bounds if self.needs == "within" else bounds[0],
            seed=seed,
            margin=margin,
            margin_text=f"{self.statistic or 'statistic'} = {stat:.4g} (needs {wanted})",
            reason=f"{self.statistic or 'the statistic'} is {stat:.4g}, " + ("as the rule needs" if holds else f"not {wanted}"),
            evidence={},
        )

    def _rule_in_words(self) -> str:
        names = list(self.thresholds)
        if self.needs == "within" and len(names) == 2:
            return f"{names[0]} < {self.statistic or 'statistic'} ≤ {names[1]}"
        return f"{self.statistic or 'statistic'} {self.needs} {names[0] if names else '(no threshold)'}"


# ---------------------------------------------------------------------------------------------
# The registry: every claim made in this process, by id


CLAIMS: dict[str, Claim] = {}
TWICE: dict[str, list[str]] = {}  # id -> the files that made it, when two places made one id


def register(claim: Claim) -> None:
    """Record `claim` under its id; the same id from another file is recorded in TWICE (refused by the suite)."""
    known = CLAIMS.get(claim.id)
    if known is not None and known.defined_in != claim.defined_in:
        TWICE.setdefault(claim.id, [known.defined_in]).append(claim.defined_in)
        return
    CLAIMS[claim.id] = claim  # the same file made again (a re-import) replaces its own


def claim_named(claim: Claim | str) -> Claim:
    """The registered claim for a Claim or an id; ClaimError when no claim has that id."""
    if isinstance(claim, Claim):
        return claim
    if claim not in CLAIMS:
        raise ClaimError(f"claim {claim!r} is not defined: make it with harness.judge.claim.Claim (known: {', '.join(CLAIMS)})")
    return CLAIMS[claim]


def twice_messages() -> list[str]:
    return [f"claim id {cid!r} is defined twice, in {' and '.join(files)}: give each claim its own id" for cid, files in TWICE.items()]


# ---------------------------------------------------------------------------------------------


def _intervention_keys() -> tuple[str, ...]:
    """The keys `under` and `not_under` accept: a kind, or one value of --positions or --component."""
    return (*KINDS, *(f"positions={p}" for p in POSITIONS), *(f"component={c}" for c in COMPONENTS))


def _compare(stat: float, needs: str, bounds: tuple[float, ...]) -> bool:
    if needs == "within":
        return bool(bounds[0] < stat <= bounds[1])
    return bool({"<=": stat <= bounds[0], "<": stat < bounds[0], ">=": stat >= bounds[0], ">": stat > bounds[0]}[needs])


def _margin(stat: float, needs: str, bounds: tuple[float, ...]) -> float:
    if needs == "within":
        return min(stat - bounds[0], bounds[1] - stat)
    return stat - bounds[0] if needs in (">=", ">") else bounds[0] - stat


__all__ = ["CLAIMS", "FIGURES", "HOLDS", "NEEDS", "Claim", "ClaimError", "Threshold", "View", "claim_named", "register"]
