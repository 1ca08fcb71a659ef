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
made twice from two places (two files, or two lines of one file), a claim without a threshold, and a claim
defined in a test module that no test judges (`problems`, `defined_in`). A field of the wrong form (an id the
expectations file cannot key, thresholds that are not Threshold records, reversed `within` bounds, a
statistic_of that is no function: harness.judge.fields) is a ClaimError when the Claim is made, and the suite
says it in one line at collection; a statistic that returns the wrong shape, or is non-finite on every prompt,
is one when it is judged (and at collection, tried on a stand-in profile: `statistic_problems`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from harness.intervene.kinds import COMPONENTS, KINDS, POSITIONS, InterventionSpec
from harness.judge.fields import field_problems, threshold_value
from harness.judge.verdict import HOLDS, PROMPT_SHARE, Verdict, judge_rule, per_prompt_of
from harness.measure.record import Profile

NEEDS = ("<=", "<", ">=", ">", "within")
# What the report draws for a claim's section (harness.report.render); "" draws nothing.
FIGURES = ("", "near_layer", "prompt_distribution", "first_token_by_length", "predictions", "causality_heatmap")


class ClaimError(ValueError):
    """A claim that cannot be judged as written: the message names the claim and the fix."""


@dataclass(frozen=True)
class Threshold:
    """A number a claim's rule compares with, and why that number."""

    value: float | Mapping[str, float]  # a mapping: one value per dtype (ZERO_RELATIVE), read at the run's dtype
    reason: str = ""  # required: a Claim with a threshold that gives no reason is refused, naming it


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
    defined_line: int = field(default=0, compare=False)  # the line of that file (two claims of one id in one file)

    def __post_init__(self) -> None:
        if not self.defined_in:
            frame = inspect.currentframe()
            caller = frame.f_back.f_back if frame is not None and frame.f_back is not None else None  # past the dataclass __init__
            object.__setattr__(self, "defined_in", caller.f_code.co_filename if caller is not None else "")
            object.__setattr__(self, "defined_line", caller.f_lineno if caller is not None else 0)
        refuse_bad_fields(self)
        if not self.test:
            object.__setattr__(self, "test", self._rule_in_words())
        register(self)

    # -- what the suite asks of a claim ---------------------------------------------------------

    def problems(self) -> list[str]:
        """What makes this claim impossible to judge, one line each (empty when it can be judged)."""
        name = f"claim {self.id!r} ({self.defined_in})"
        out = field_problems(self)
        if out:  # the other checks read the fields in the forms these require
            return out
        if self.judge is None and self.statistic_of is None:
            out.append(f"{name} has no statistic: give statistic_of=a function of a View, or judge=a rule of its own")
        if self.needs not in NEEDS:
            out.append(f"{name} needs {self.needs!r}: write one of {', '.join(NEEDS)}")
        if self.judge is None and not self.thresholds:
            out.append(f"{name} has no threshold: give thresholds={{'NAME': Threshold(value, 'why this value')}}")
        if self.needs == "within" and self.judge is None and len(self.thresholds) != 2:
            out.append(f"{name} needs 'within' two thresholds (low, high); it has {len(self.thresholds)}")
        for key in [*self.under, *self.not_under]:
            if key not in _intervention_keys():
                out.append(f"{name} states its rule under {key!r}, which is no intervention: use one of {', '.join(_intervention_keys())}")
        if self.figure not in FIGURES:
            out.append(f"{name} asks for figure {self.figure!r}: choose one of {', '.join(map(repr, FIGURES))}")
        return out or statistic_problems(self)

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
        return self.judge_profile(measured, 0, seed=run.seed, dtype=str(getattr(run, "dtype", "float32")))

    def judge_profile(self, prof: Profile, factor_index: int = 0, *, seed: int = 0, dtype: str = "float32") -> Verdict:
        """The verdict of `statistic_of` against the thresholds, on the aggregate and on PROMPT_SHARE of the prompts;
        a per-dtype threshold is read at `dtype` (the subject's resolved dtype)."""
        if self.statistic_of is None:
            raise ClaimError(f"claim {self.id!r} has no statistic_of: it is judged by its own judge()")
        bounds = tuple(threshold_value(self, k, t.value, dtype) for k, t in self.thresholds.items())

        def statistic(d: np.ndarray, c: np.ndarray, a: np.ndarray) -> np.ndarray:
            return statistic_checked(self, View(prof, d, c, a))

        def rule(d: np.ndarray, c: np.ndarray, a: np.ndarray) -> bool:
            return _compare(float(statistic(d, c, a)), self.needs, bounds)

        stat = float(statistic(prof.delta[factor_index], prof.clean_norm, prof.delta_all_tokens[factor_index]))
        if not math.isfinite(stat):
            raise ClaimError(
                f"claim {self.id!r}: its statistic is {stat} on the aggregate at factor {prof.factors[factor_index]:g} "
                f"({prof.model}, layer {prof.layer}): make {getattr(self.statistic_of, '__name__', 'statistic_of')} return a "
                "finite number (guard divisions by a Δ of 0)"
            )
        if prof.prompt_delta is not None:
            every_prompt_non_finite(self, statistic(*per_prompt_of(prof, factor_index)), stat)
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
TWICE: dict[str, list[str]] = {}  # id -> the places (file:line) that made it, when two places made one id
REFUSED: list[str] = []  # the ClaimError of each Claim refused when it was made, in order (the suite says the first)


def register(claim: Claim) -> None:
    """Record `claim` under its id; the same id from another place (another file, or another line of the same
    file) is recorded in TWICE (refused by the suite); the same place made again (a re-import) replaces its own."""
    known = CLAIMS.get(claim.id)
    if known is not None and _place(known) != _place(claim):
        places = TWICE.setdefault(claim.id, [_place(known)])
        if _place(claim) not in places:
            places.append(_place(claim))
        return
    CLAIMS[claim.id] = claim


def _place(claim: Claim) -> str:
    return f"{claim.defined_in}:{claim.defined_line}" if claim.defined_line else claim.defined_in


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
# A claim's fields checked: when it is made, when its statistic is judged, and at collection on a stand-in profile


def refuse_bad_fields(claim: Claim) -> None:
    """ClaimError (also kept in REFUSED, for the suite's one line) for the first field of the wrong form."""
    problems = field_problems(claim)
    if problems:
        REFUSED.append(problems[0])
        raise ClaimError(problems[0])


def statistic_checked(claim: Claim, view: View) -> np.ndarray:
    """`statistic_of(view)` as float64 of shape view.delta.shape[:-1]: () for the aggregate, (P,) per prompt, (B,)
    resampled; ClaimError naming the claim for anything else (an array per site, one constant, text)."""
    value = claim.statistic_of(view)  # type: ignore[misc]
    try:
        out = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ClaimError(
            f"claim {claim.id!r} ({claim.defined_in}): statistic_of returned {type(value).__name__} {str(value)[:40]!r}, "
            "not a number: return a float (numpy) array computed from the View"
        ) from None
    wanted = view.delta.shape[:-1]
    if out.shape != wanted:
        whats = {0: "the corpus aggregate, whose arrays are (S,)", 1: "each prompt, whose arrays are (P, S)"}
        what = whats.get(len(wanted), "resampled corpora")
        raise ClaimError(
            f"claim {claim.id!r} ({claim.defined_in}): statistic_of returned shape {out.shape} for {what}; it takes shape "
            f"{wanted}: reduce over the last (sites) axis only, e.g. v.delta[..., -1] / v.delta[..., v.site('block.2')] "
            "(a constant or a Python float does not follow the prompts)"
        )
    return out


def every_prompt_non_finite(claim: Claim, per_prompt: np.ndarray, aggregate: float) -> None:
    """ClaimError when the statistic is inf or NaN on every prompt while finite on the aggregate: the prompts then
    give no share and no interval (a bootstrap would read [x, inf] as sure)."""
    values = np.asarray(per_prompt, dtype=np.float64)
    if values.size and not np.isfinite(values).any():
        raise ClaimError(
            f"claim {claim.id!r} ({claim.defined_in}): statistic_of is {values.flat[0]} on every prompt ({values.size} of {values.size}) "
            f"but {aggregate:.4g} on the aggregate: make it finite prompt by prompt (guard divisions by a Δ of 0)"
        )


def statistic_problems(claim: Claim) -> list[str]:
    """statistic_of tried on a stand-in profile (6 blocks, 4 prompts, layer 2): a wrong shape or a statistic non-finite on
    every prompt is said at collection. A statistic that raises there is left to the run (it may need real sites)."""
    if claim.statistic_of is None or claim.judge is not None:
        return []
    sites = ("embed", *(f"block.{n}" for n in range(6)), "final_norm")
    rng = np.random.default_rng(0)
    prompt = rng.uniform(0.5, 2.0, (1, len(sites), 4)) * np.r_[0, 0, 0, 1, 2, 3, 4, 5][None, :, None]  # (F, S, P): 0 before L
    norm = rng.uniform(5.0, 10.0, (len(sites), 4))
    prof = Profile("stand-in", "", 2, sites, (0.5,), (5, 6, 7, 8), np.sqrt((prompt**2).sum(-1)), np.sqrt((prompt**2).sum(-1)),
                   np.sqrt((norm**2).sum(-1)), np.sqrt((norm**2).sum(-1)), norm.mean(-1), norm.mean(-1), prompt, prompt, norm)  # fmt: skip
    try:
        aggregate = float(statistic_checked(claim, View(prof, prof.delta[0], prof.clean_norm, prof.delta_all_tokens[0])))
        per_prompt = statistic_checked(claim, View(prof, *per_prompt_of(prof, 0)))
        if math.isfinite(aggregate):
            every_prompt_non_finite(claim, per_prompt, aggregate)
    except ClaimError as exc:
        return [str(exc)]
    except Exception:  # the statistic needs what a stand-in lacks: judged on the real profile, where errors are said
        return []
    return []


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
