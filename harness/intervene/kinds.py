"""The intervention kinds as data: what each does to block L's hidden state, its strengths, its options.

    kind = KINDS["noise"]
    kind.formula                 # "h_t + s·‖h_t‖·u_t, u_t a unit vector per token drawn from --seed"
    kind.check(1.5)              # InputError: outside noise's range [0, 1]
    kind.drawn                   # (0.0, 1.0): the range the claims' Hypothesis strategies draw from
    spec = InterventionSpec(kind="add", direction=Path("v.npy")).validated()

Torch-free, so `harness.settings` and `harness.judge.claim` read it without the engine; the edits
themselves (tensor code, hooks) are `harness.intervene.edits` and `harness.intervene.protocol`. The strength s is the sweep's axis,
given with `--factor` for every kind.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

from harness.errors import InputError

POSITIONS = ("all", "first", "rest")  # which tokens are edited: every one, each prompt's first, every one but the first
COMPONENTS = ("output", "attention", "mlp")  # block L's output residual stream, or one sub-layer's write into it


@dataclass(frozen=True)
class Kind:
    """One intervention kind; see the module docstring."""

    name: str
    formula: str  # what block L's chosen hidden state becomes, in words (README, report)
    allowed: tuple[float, float]  # strengths accepted (inclusive); ±inf: any finite
    drawn: tuple[float, float]  # strengths the claims' property tests draw from
    defaults: tuple[float, ...]  # strengths used when --factor is not given
    identity: float | None  # the strength that changes nothing (None: only an empty edit does, e.g. add with v = 0)
    delta_at_layer: str  # what Δ at block L is for this kind: C2's statistic in its terms
    note_scale: float = 1.0  # the claims measure strength note_scale·f for the note's factor f (0.5, 1.5, drawn in [0.5, 1.5])
    per_token_norm: bool = False  # every edited token moves by one multiple of its own norm: C5's predicted curve applies

    def from_note(self, factor: float) -> float:
        """The strength the claims measure for the note's factor f: note_scale·f, inside the kind's range, never its identity."""
        return factor * self.note_scale

    def near_identity(self, factor: float, band: float) -> bool:
        """Whether the note's factor f measures a strength within band·note_scale of this kind's identity
        (scale: |1 − f| < band, the note's band around 1; a kind whose identity is 0 is never near it for f ≥ 0.5)."""
        return self.identity is not None and abs(self.from_note(factor) - self.identity) < band * self.note_scale

    def check(self, value: float) -> float:
        """`value` if it lies in this kind's range, else one InputError naming it and the range."""
        low, high = self.allowed
        if not low <= value <= high:
            raise InputError(
                f"strength {value:g} is outside {self.name}'s range {_range(self.allowed)}: give --factor values in it "
                f"(the claims draw from {_range(self.drawn)})."
            )
        return value


# drawn = note_scale × the note's range [0.5, 1.5]: what the claims' property tests measure
KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("scale", "s·h (the note's)", (-math.inf, math.inf), (0.5, 1.5), (0.5, 1.5), 1.0, "|1 − s|·‖H_L‖", per_token_norm=True),
        Kind(
            "scale-update",
            "h_in + s·(h − h_in), h_in the block's input: s = 0 skips the block, s = 1 changes nothing",
            (0.0, 1.5),
            (0.5, 1.5),
            (0.5, 1.5),
            1.0,
            "|1 − s|·‖H_L − H_in‖, the block's update",
        ),
        Kind(
            "noise",
            "h_t + s·‖h_t‖·u_t, u_t a unit vector per token drawn from --seed: relative Δ at L is s",
            (0.0, 1.0),
            (1 / 3, 1.0),
            (0.5, 1.0),
            0.0,
            "s·‖H_L‖",
            note_scale=2 / 3,
            per_token_norm=True,
        ),
        Kind("add", "h_t + s·v, v the --direction vector", (-math.inf, math.inf), (0.5, 1.5), (-1.0, 1.0), 0.0, "|s|·‖v‖·√(tokens)"),
        Kind(
            "mean-ablate",
            "(1 − s)·h_t + s·μ, μ the clean mean of that state over the counted tokens",
            (0.0, 1.0),
            (1 / 3, 1.0),
            (0.5, 1.0),
            0.0,
            "s·‖H_L − μ‖",
            note_scale=2 / 3,
        ),
    )
}
DEFAULT_KIND = "scale"


@dataclass(frozen=True)
class InterventionSpec:
    """Which intervention a run makes, apart from its strengths and layer; what the report and JSON name.

    `direction` is the file of `add`'s vector; `direction_sha256` is filled in when the file is read.
    """

    kind: str = DEFAULT_KIND
    positions: str = "all"
    component: str = "output"
    direction: Path | None = None
    seed: int = 0  # noise's unit vectors
    direction_sha256: str | None = None

    def validated(self) -> InterventionSpec:
        """This spec checked without a model; raise InputError naming the first bad value."""
        _one_of("intervention", self.kind, tuple(KINDS))
        _one_of("positions", self.positions, POSITIONS)
        _one_of("component", self.component, COMPONENTS)
        if self.kind == "add" and self.direction is None:
            raise InputError("--intervention add needs --direction FILE: a .npy or .pt vector of the model's width.")
        if self.kind != "add" and self.direction is not None:
            raise InputError(
                f"--direction {str(self.direction)!r} is given but --intervention is {self.kind!r}: only add reads a direction; "
                "drop --direction or use --intervention add."
            )
        if self.kind == "scale-update" and self.component != "output":
            raise InputError(
                f"--intervention scale-update with --component {self.component} is not allowed: scale-update rescales the block's "
                "update h − h_in, and a sub-layer's write already is an update: use --intervention scale with that component."
            )
        return self

    @property
    def kind_row(self) -> Kind:
        return KINDS[self.kind]

    def check_strengths(self, strengths: tuple[float, ...] | list[float]) -> None:
        for value in strengths:
            self.kind_row.check(float(value))

    def first_token_curve_note(self) -> str | None:
        """Why C5's predicted curve does not describe this intervention, or None when it does."""
        if not self.kind_row.per_token_norm:
            return f"{self.kind} does not move each token by a multiple of its own norm (Δ at L is {self.kind_row.delta_at_layer})"
        if self.positions != "all" or self.component != "output":
            return "the curve assumes every token of the block's output is edited (--positions all, --component output)"
        return None

    def with_sha256(self) -> InterventionSpec:
        """This spec with add's direction file's sha256 read (the file as it is now); unchanged without a direction."""
        if self.direction is None or not Path(self.direction).is_file():
            return self
        return dataclasses.replace(self, direction_sha256=hashlib.sha256(Path(self.direction).read_bytes()).hexdigest())

    def describe(self) -> dict[str, object]:
        """What the profile, the JSON, the header and the run record name."""
        return {
            "intervention": self.kind,
            "positions": self.positions,
            "component": self.component,
            "direction": None if self.direction is None else str(self.direction),
            "direction_sha256": self.direction_sha256,
        }

    def label(self) -> str:
        """One short phrase: "scale", "noise on the first token of block 2's mlp write"."""
        parts = [self.kind]
        if self.positions != "all":
            parts.append({"first": "first token only", "rest": "every token but the first"}[self.positions])
        if self.component != "output":
            parts.append(f"{self.component} write")
        if self.direction_sha256:
            parts.append(f"direction sha256 {self.direction_sha256[:12]}")
        return ", ".join(parts)


def _one_of(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InputError(f"--{name} {value!r} is not supported: choose one of {', '.join(allowed)}.")


def _range(bounds: tuple[float, float]) -> str:
    low, high = bounds
    if math.isinf(low) and math.isinf(high):
        return "any finite number"
    return f"[{low:g}, {high:g}]"
