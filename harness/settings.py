"""One settings object for a run; the CLI flags and the pytest options are made from its fields.

    settings = Settings(model="minilm", layer=2).validated()     # InputError naming any bad value
    settings = Settings.from_text({"layer": ("4", "--layer")})   # parse what a user typed, saying where

Each field carries its flag, its help and its parser once, in `dataclasses.field(metadata=...)`
(see `setting`). `harness.cli` adds one flag per field marked for the CLI, `harness.suite.plugin` one
pytest option per field marked for pytest, with an environment fallback `HARNESS_<NAME>`; the
report's header prints `as_dict()`. So a name, a default and a help text are written here only.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.intervene.kinds import COMPONENTS, KINDS, POSITIONS, InterventionSpec

# The note's two factors (§2): "reduce by 50%" and "increase to 150%".
NOTE_FACTORS: tuple[float, ...] = (0.5, 1.5)
# The note's intervention site (§2): transformer block index 2, the third block.
NOTE_LAYER = 2

DTYPES = ("float32", "bfloat16", "float16", "auto")  # auto: the checkpoint's own dtype
DEVICES = ("auto", "cpu", "cuda")  # also "cuda:N"
BOS = ("auto", "yes", "no")  # prepend a BOS token: the architecture's rule, always, never
SEED_MAX = 2**64 - 1  # torch.manual_seed takes at most an unsigned 64-bit integer
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")  # accelerate's placement strategies
_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}

# Environment variables read by the pytest plugin when an option is not given.
ENV_PREFIX = "HARNESS_"
CLI, PYTEST = "cli", "pytest"  # where a field is offered as an option


@dataclass(frozen=True)
class Option:
    """How one Settings field is offered to a user; read from the field's metadata by `options()`."""

    name: str  # the field
    flag: str  # "--layer"
    help: str  # one sentence, the default appended by `help_text`
    parse: Callable[[str], Any]  # text as typed -> value; raises ValueError saying what is allowed
    default: Any
    where: tuple[str, ...]  # CLI, PYTEST or both
    repeat: bool = False  # the flag may be given many times (factors)
    switch: bool = False  # a flag without a value (store_true)
    optional: bool = False  # None is a value (prompts: the suite's corpus; factor_batch: the budget's choice)
    several: bool = False  # pytest: repeatable (its variable comma-separated), each value making its own Settings (model)

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    def help_text(self) -> str:
        shown = ", ".join(map(_show, self.default)) if isinstance(self.default, tuple) else _show(self.default)
        return f"{self.help} (default {shown})"


def setting(
    default: Any, help: str, parse: Callable[[str], Any], *, where: tuple[str, ...] = (CLI, PYTEST), flag: str = "", **kw: bool
) -> Any:
    """A Settings field with its option's description; see `Option`."""
    return dataclasses.field(default=default, metadata={"option": {"help": help, "parse": parse, "where": where, "flag": flag, **kw}})


# ---------------------------------------------------------------------------------------------
# Parsers: text -> value, or ValueError whose message says what is allowed (the caller names the value)


def _text(text: str) -> str:
    if not text.strip():
        raise ValueError("is empty: give a subject name (gpt2, minilm, random-gpt2), a Hub id or a directory")
    return text


def _choice(allowed: tuple[str, ...], extra: str = "") -> Callable[[str], str]:
    """One of `allowed`, or `extra` followed by a non-negative integer in ASCII digits ("cuda:1")."""

    def parse(text: str) -> str:
        index = text.removeprefix(extra) if extra and text.startswith(extra) else None
        if text not in allowed and not (index and index.isascii() and index.isdigit()):
            raise ValueError(f"is not supported: choose one of {', '.join(allowed)}" + (f" or {extra}N, N a device index" if extra else ""))
        return text

    return parse


def _integer(minimum: int, what: str, maximum: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        digits = text.strip().lstrip("+-")
        if maximum is not None and len(digits.lstrip("0")) > len(str(maximum)) and digits.isascii() and digits.isdigit():
            raise ValueError(f"is above {maximum}: give {what}")  # said before int() meets its 4300-digit limit
        try:
            if not digits.isascii():
                raise ValueError  # int() also reads other scripts' digits ("٣"); a typed setting is ASCII
            value = int(text)
        except ValueError:
            raise ValueError(f"is not an integer: give {what}") from None
        if value < minimum:
            raise ValueError(f"is below {minimum}: give {what}")
        if maximum is not None and value > maximum:
            raise ValueError(f"is above {maximum}: give {what}")
        return value

    return parse


def _factor_batch(text: str) -> int | None:
    if text.strip().lower() == "auto":
        return None
    return _integer(1, "a positive count of factors per forward, such as 1 or 4, or 'auto' (as many as the memory budget allows)")(text)


def _switch(text: str) -> bool:
    word = text.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("is not a yes/no value: give 1, true, yes, 0, false or no")


def _prompts_file(text: str) -> Path:
    if not text.strip():  # Path("") is the working directory, which is not what was meant
        raise ValueError("is empty: give a text file with one prompt per line")
    path = Path(text).expanduser()
    if path.is_dir():
        raise ValueError("is a directory: give a text file with one prompt per line")
    if not path.exists():
        raise ValueError("does not exist: give a text file with one prompt per line")
    if not path.is_file():
        raise ValueError("is not a regular file: give a text file with one prompt per line")
    if not os.access(path, os.R_OK):
        raise ValueError("cannot be read: check its permissions")
    return path


def _direction_file(text: str) -> Path:
    path = Path(text).expanduser()
    allowed = "give a .npy or .pt file holding one vector of the model's width"
    if path.suffix not in (".npy", ".pt"):
        raise ValueError(f"is not a .npy or .pt file: {allowed}")
    if not path.exists():
        raise ValueError(f"does not exist: {allowed}")
    if not path.is_file():
        raise ValueError(f"is not a regular file: {allowed}")
    if not os.access(path, os.R_OK):
        raise ValueError("cannot be read: check its permissions")
    return path


def parse_layers(text: str) -> str:
    """A layer map's layers as typed: "all", or block indices and ranges, "0-5", "2,4", "0-2,7"; normalised text.

    Nothing is built here: `layers_of` checks each part against the model's blocks before listing any.
    """
    word = text.strip().lower()
    if word == "all":
        return word
    parts = [p.strip() for p in word.split(",")]
    allowed = "give 'all', a range such as 0-5, or block indices such as 2,4"
    for part in parts:
        ends = part.split("-")
        if not part or len(ends) > 2 or not all(e.isascii() and e.isdigit() for e in ends):
            raise ValueError(f"is not a layer list: {allowed}")
        first, last = (_index(e) for e in (ends[0], ends[-1]))
        if first > last:
            raise ValueError(f"has a range that runs backwards ({part}): {allowed}")
    return ",".join(parts)


def parse_max_memory(text: str) -> str:
    """Memory per device as typed, "0=10GiB,cpu=20GiB": GPU indices or cpu, each a size (B, KB, MB, GB, KiB, MiB, GiB); normalised text."""
    allowed = "give DEVICE=SIZE pairs separated by commas, DEVICE a GPU index or cpu, e.g. 0=10GiB,cpu=20GiB"
    parts = [p.strip() for p in text.split(",")]
    seen: set[str] = set()
    for part in parts:
        device, _, size = (x.strip() for x in part.partition("="))
        if not (device == "cpu" or (device.isascii() and device.isdigit())) or not size:
            raise ValueError(f"is not a memory map: {allowed}")
        if device in seen:
            raise ValueError(f"names {device} twice: {allowed}")
        seen.add(device)
        memory_bytes(size)  # ValueError naming the size
    return ",".join(p.replace(" ", "") for p in parts)


def max_memory_of(text: str) -> dict[int | str, int]:
    """A `parse_max_memory` text as accelerate's max_memory: {0: bytes, "cpu": bytes}."""
    pairs = (part.split("=") for part in text.split(","))
    return {(int(device) if device.isdigit() else device): memory_bytes(size) for device, size in pairs}


def memory_bytes(size: str) -> int:
    """"10GiB" -> 10·2³⁰, "500MB" -> 5·10⁸, "123" -> 123 bytes; ValueError saying what is allowed."""
    number = size.rstrip("BKMGTIbkmgti")
    unit = size[len(number) :].upper() or "B"
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if unit not in _UNITS or not math.isfinite(value) or value <= 0:
        raise ValueError(f"has the size {size!r}: give a positive number with a unit such as 10GiB, 500MB or 2048KiB")
    return int(value * _UNITS[unit])


def parse_interventions(text: str) -> str:
    """An intervention map's kinds as typed: "scale,scale-update,noise"; normalised text, each kind once, in KINDS order."""
    parts = [p.strip().lower() for p in text.split(",")]
    unknown = [p for p in parts if p not in KINDS]
    if unknown:
        raise ValueError(f"names {unknown[0]!r}, which is no intervention: give kinds from {', '.join(KINDS)}, comma-separated")
    return ",".join(k for k in KINDS if k in parts)


def layers_of(spec: str, n_blocks: int, label: str = "--layers") -> list[int]:
    """The block indices a `parse_layers` text names on a model of `n_blocks` blocks, sorted, each once.

    Raise InputError naming the first index outside the model's blocks, found from each part's ends
    before any range is listed: "0-99999999999999999999" costs no memory, and the list built has at
    most `n_blocks` entries however many parts the text has.
    """
    if spec == "all":
        return list(range(n_blocks))
    ranges = []
    for part in spec.split(","):
        first, _, last = part.partition("-")
        ranges.append((_index(first), _index(last or first)))
    beyond = min((max(first, n_blocks) for first, last in ranges if last >= n_blocks), default=None)
    if beyond is not None:
        raise InputError(
            f"{_named(label, spec)} names block {beyond}, beyond the model's {n_blocks} blocks: give layers from 0 to {n_blocks - 1}."
        )
    named = bytearray(n_blocks)  # one flag per block
    for first, last in ranges:
        named[first : last + 1] = b"\x01" * (last + 1 - first)
    return [n for n in range(n_blocks) if named[n]]


def _index(digits: str) -> int:
    """ASCII digits as a block index; ValueError for one of more than 18 digits, a count no model's blocks reach."""
    digits = digits.lstrip("0") or "0"
    if len(digits) > 18:  # int() would also stop at 4300 digits, with a message about int() instead of the layers
        raise ValueError(f"names block {_cut(digits)}, larger than any model's block count: give indices such as 2,4")
    return int(digits)


def parse_factor(text: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError("is not a number: give a finite real number such as 0.5 or 1.5") from None
    if not math.isfinite(value):
        raise ValueError("is not allowed: factors must be finite real numbers (not NaN or inf)")
    return value


@dataclass(frozen=True)
class Settings:
    model: str = setting(
        "gpt2",
        "subject: gpt2 (the note's model), minilm, random-gpt2, a Hub id or a local directory; pytest: repeat it (or comma-separate "
        "the variable) to run the claims on several models in turn",
        _text,
        several=True,
    )
    device: str = setting("auto", "auto (CUDA when present, else CPU), cpu, cuda or cuda:N", _choice(DEVICES, "cuda:"))
    dtype: str = setting(
        "float32",
        "weights and activations: float32, bfloat16, float16, or auto (the checkpoint's own); norms sum in float32",
        _choice(DTYPES),
    )
    layer: int = setting(
        NOTE_LAYER,
        "block intervened on (the note scales its output), 0 ≤ layer < the model's block count",
        _integer(0, "a block index such as 2"),
    )
    factors: tuple[float, ...] | None = setting(
        None,
        "scaling factor, or the intervention's strength s, repeatable; none: the kind's own (scale: 0.5 and 1.5, the note's)",
        parse_factor,
        where=(CLI,),
        flag="--factor",
        repeat=True,
        optional=True,
    )  # the claims use the note's factors (or the kind's) and drawn ones, so pytest takes none
    intervention: str = setting(
        "scale",
        "the edit of block L's state: " + ", ".join(KINDS) + " (README's Interventions: formula and strength range of each)",
        _choice(tuple(KINDS)),
    )
    positions: str = setting(
        "all", "tokens edited: all, first (each prompt's first only) or rest (every token but the first)", _choice(POSITIONS)
    )
    component: str = setting(
        "output",
        "state edited: output (the block's output residual stream), attention or mlp (that sub-layer's write into it)",
        _choice(COMPONENTS),
    )
    direction: Path | None = setting(  # noqa: RUF009 (setting() returns a dataclasses.field)
        None, "add's vector: a .npy or .pt file of one vector of the model's width (its sha256 is recorded)", _direction_file, optional=True
    )
    prompts: Path | None = setting(  # noqa: RUF009 (setting() returns a dataclasses.field)
        None,
        "text file, one prompt per line ('#' lines are comments); pytest reads the note's corpus (harness/note/prompts.txt) without it",
        _prompts_file,
        optional=True,
    )
    include_first_token: bool = setting(
        False,
        "Δ, rel and the prediction measures count each prompt's first token (the note excludes it, §3.2)",
        _switch,
        where=(CLI,),
        switch=True,
    )  # the claims judge both readings (C5 compares them)
    memory_budget_mb: int = setting(2048, "MiB of activations held at once per chunk of factors", _integer(16, "at least 16 (MiB)"))
    seed: int = setting(
        0,
        "seed of random-gpt2's weights, of noise's unit vectors and of the verdicts' bootstrap intervals, 0 to 2**64 − 1",
        _integer(0, f"an integer from 0 to {SEED_MAX} (2**64 − 1, torch's seed range)", SEED_MAX),
    )
    factor_batch: int | None = setting(
        1,
        "factors stacked per forward: 1 keeps the clean pass's shapes, so Δ before the layer is bit-exact 0 as in the note's "
        "loop; N or 'auto' (the memory budget's choice) is faster on GPUs, with float32 rounding of ~1e-7 relative",
        _factor_batch,
        optional=True,
    )
    reuse_prefix: bool = setting(
        False,
        "replay only the blocks after the layer from the clean pass's block inputs; sites before it are 0 by construction",
        _switch,
        where=(CLI,),
        switch=True,
    )  # the claims measure the sites before the layer (C1), so pytest runs the full forward
    prepend_bos: str = setting("auto", "prepend a BOS token: auto (the architecture's rule), yes or no", _choice(BOS))
    device_map: str | None = setting(
        None,
        "place the model's blocks with accelerate (auto, balanced, balanced_low_0, sequential) over the GPUs, the CPU and disk, "
        "for models larger than one device; --device is then where captures are gathered and Δ is summed",
        _choice(DEVICE_MAPS),
        optional=True,
    )
    max_memory: str | None = setting(
        None,
        "with --device-map: the most memory each device may hold, e.g. 0=10GiB,cpu=20GiB; what does not fit is offloaded to disk",
        parse_max_memory,
        optional=True,
    )
    layers: str | None = setting(
        None,
        "layer map: also judge C1–C5 with the scaled block at each of these layers ('all', a range 0-5, a list 2,4), sharing one "
        "clean pass; only --layer's results (and layers the expectations file names) can fail, the others are findings",
        parse_layers,
        where=(PYTEST,),
        optional=True,
    )  # the CLI profiles one layer at a time
    interventions: str | None = setting(
        None,
        "intervention map: also judge C1–C6 under each of these kinds (a list such as scale,scale-update,noise) at --layer, "
        "sharing one clean pass; only --intervention's results (and kinds with a [model.KIND] expectations section) can fail, "
        "the others are findings",
        parse_interventions,
        where=(PYTEST,),
        optional=True,
    )  # the CLI profiles one intervention at a time

    def validated(self) -> Settings:
        """These settings checked and normalised (numpy integers -> int); raise InputError naming the first bad one."""
        if self.factors is not None and not self.factors:
            raise InputError("no factors given: pass at least one, e.g. --factor 0.5 --factor 1.5.")
        if self.max_memory is not None and self.device_map is None:
            raise InputError(
                f"max_memory {self.max_memory!r} is given without device_map: add --device-map auto, or leave --max-memory out."
            )
        out = dataclasses.replace(
            self, **{o.name: _normal(o, getattr(self, o.name), f"{o.name}={getattr(self, o.name)!r}") for o in options()}
        )
        for kind in out.map_interventions():
            out.at_intervention(kind).intervention_spec().validated()  # e.g. add in the map needs --direction
        spec = out.intervention_spec().validated()
        factors = out.factors if out.factors is not None else spec.kind_row.defaults
        spec.check_strengths(factors)
        return dataclasses.replace(out, factors=tuple(factors))

    def intervention_spec(self) -> InterventionSpec:
        """The intervention these settings name (harness.intervene.kinds), unchecked: call .validated() on it."""
        mapped_add = self.intervention != "add" and "add" in self.map_interventions()
        direction = None if mapped_add else self.direction  # --direction is then the map's add's, not this kind's
        return InterventionSpec(self.intervention, self.positions, self.component, direction, self.seed)

    def map_interventions(self) -> list[str]:
        """The intervention map's kinds (--interventions), --intervention always among them; [] without a map."""
        if self.interventions is None:
            return []
        named = {*self.interventions.split(","), self.intervention}
        return [kind for kind in KINDS if kind in named]

    def at_intervention(self, kind: str) -> Settings:
        """These settings under another kind of the intervention map (positions, component, seed kept)."""
        return self if kind == self.intervention else dataclasses.replace(self, intervention=kind)

    @classmethod
    def from_text(cls, given: Mapping[str, tuple[str | list[str], str]]) -> Settings:
        """Settings from what a user typed: {field: (text or list of texts, where it came from)}.

        `where` is the flag or the variable ("--layer", "HARNESS_LAYER"); every error names it and the text.
        """
        known = {o.name: o for o in options()}
        values: dict[str, object] = {}
        for name, (raw, where) in given.items():
            option = known[name]
            texts = raw if isinstance(raw, list) else [raw]
            parsed = [_parse(option, text, where) for text in texts]
            values[name] = tuple(parsed) if option.repeat else parsed[-1]
        return cls(**values).validated()

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, object]:
        out = dataclasses.asdict(self)
        out["factors"] = list(self.factors) if self.factors is not None else None
        out["prompts"] = str(self.prompts) if self.prompts is not None else None
        out["direction"] = str(self.direction) if self.direction is not None else None
        return out


def options() -> list[Option]:
    """Every Settings field as an Option, in field order."""
    out = []
    for f in dataclasses.fields(Settings):
        meta = dict(f.metadata["option"])
        flag = meta.pop("flag") or "--" + f.name.replace("_", "-")
        out.append(Option(name=f.name, flag=flag, default=f.default, **meta))
    return out


def where_given(option: Option, flag_value: object, environ: Mapping[str, str] = os.environ) -> tuple[object, str] | None:
    """(text, where) for an option given as a flag, else from its environment variable, else None."""
    if flag_value is not None and flag_value != []:
        return flag_value, option.flag
    if option.env in environ:
        return environ[option.env], option.env
    return None


def check_setting(name: str, value: object) -> Any:
    """`value` checked and normalised as Settings field `name` checks it; InputError naming `name=value` otherwise.

    seed = check_setting("seed", seed)     # in an API function taking a setting directly
    """
    option = next(o for o in options() if o.name == name)
    return _normal(option, value, f"{name}={value!r}")


def check_factor(value: object) -> float:
    """Return `value` as a float, or raise InputError if it is not a finite number."""
    if isinstance(value, bool):
        raise InputError(f"factor {value!r} is not allowed: factors must be finite real numbers (not a bool).")
    try:
        return parse_factor(value)  # type: ignore[arg-type]
    except ValueError as exc:
        raise InputError(f"factor {value!r} {exc}.") from None


# ---------------------------------------------------------------------------------------------


def _parse(option: Option, text: object, where: str) -> object:
    if option.switch and isinstance(text, bool):
        return text
    if where.startswith(ENV_PREFIX) and not option.switch and not str(text).strip():  # Path("") is the working directory
        default = "its default" if option.default is None else f"the default {_show(option.default)}"
        raise InputError(f"{where} is set but empty: set it to a value ({option.help}), or unset it (unset {where}) for {default}.")
    try:
        return option.parse(str(text))
    except ValueError as exc:
        raise InputError(f"{_named(where, text)} {exc}.") from None


def _normal(option: Option, value: object, label: str) -> object:
    """A typed value checked the way its parser checks text, and normalised (numpy integers -> int)."""
    if option.repeat:
        if value is None and option.optional:
            return None
        if not isinstance(value, tuple | list):
            raise InputError(f"{label} is not allowed: give a list of numbers such as [0.5, 1.5].")
        return tuple(_normal_one(option, one, label) for one in value)
    return _normal_one(option, value, label)


def _normal_one(option: Option, value: object, label: str) -> object:
    if value is None:
        if option.optional:
            return None
        raise InputError(f"{label} is not allowed: give a value (default {_show(option.default)}).")
    if isinstance(value, bool) != option.switch:
        raise InputError(f"{label} is not allowed: " + ("give True or False." if option.switch else "a bool is not a value here."))
    if option.switch:
        return value
    try:
        return option.parse(str(value))  # the text a user would type: 2.0 is not an integer, np.int64(2) is
    except ValueError as exc:
        raise InputError(f"{label} {exc}.") from None


def _named(where: str, text: object) -> str:
    """How an error names a value: `--layer 'abc'`, or `HARNESS_LAYER='abc'` for an environment variable.

    A value of hundreds of characters is cut to its start and end, so the message stays one readable line.
    """
    shown = _cut(repr(text), len(str(text)))
    return f"{where}={shown}" if where.startswith(ENV_PREFIX) else f"{where} {shown}"


def _cut(shown: str, length: int | None = None) -> str:
    """`shown` itself, or its start and end with the length between (`length` characters, default its own)."""
    if len(shown) <= _SHOWN_CHARS:
        return shown
    return f"{shown[: _SHOWN_CHARS // 2]}…{shown[-_SHOWN_CHARS // 4 :]} ({length or len(shown)} characters)"


_SHOWN_CHARS = 240  # of a value quoted in an error: a long path stays whole, a 10**20-layer list is cut


def _show(value: object) -> str:
    return "none" if value is None else str(value)
