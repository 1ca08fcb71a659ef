"""The intervention kinds: one small `Intervention` per row of harness.intervene.kinds, and how to build one.

    with Noise(subject, 2, 0.3, seed=0, positions="rest", component="mlp"):
        subject.model(**batch)          # block 2's MLP write gets 0.3·‖w_t‖·u_t at every token but the first
    v, sha = read_direction(Path("v.npy"), width=768)
    edit = build(subject, InterventionSpec(kind="add", direction=Path("v.npy")), 2, 1.0, direction=v)

Each kind's `target` says what the edited state becomes; the hooks, strengths and positions are the
protocol's (harness.intervene.protocol). Where a kind has a strength that changes nothing (scale 1,
scale-update 1, noise 0, mean-ablate 0) the edited state is the clean one bit for bit.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.errors import InputError
from harness.intervene.kinds import InterventionSpec
from harness.intervene.protocol import Intervention, Strength


class Scale(Intervention):
    """s·h: the note's intervention. `Scale(subject, layer, factor)`."""

    kind = "scale"

    def target(self, hidden: torch.Tensor, s: Strength, block_in: torch.Tensor | None, prompt_ids: torch.Tensor) -> torch.Tensor:
        return hidden * s


class ScaleUpdate(Intervention):
    """h_in + s·(h − h_in): s = 0 gives the block's input exactly (the block skipped), s = 1 the block's output exactly.

    torch.lerp computes start + w·(end − start) for |w| < 0.5 and end − (end − start)·(1 − w) otherwise,
    so both ends are exact, not rounded.
    """

    kind = "scale-update"
    needs_block_input = True

    def target(self, hidden: torch.Tensor, s: Strength, block_in: torch.Tensor | None, prompt_ids: torch.Tensor) -> torch.Tensor:
        if block_in is None:
            raise RuntimeError("scale-update needs the block's input: enter the intervention before the forward")
        return torch.lerp(block_in.to(hidden.dtype), hidden, s)


class Noise(Intervention):
    """h_t + s·‖h_t‖·u_t, u_t a unit vector per token: prompt p's vectors come from a generator seeded by (seed, p).

    The vectors are drawn on the CPU in float32, so they do not depend on the device; a prompt keeps its
    vectors whichever rows, factors or replays it runs in. Relative Δ at the edited tokens is s.
    """

    kind = "noise"

    def __init__(self, subject: Any, layer: int, factor: Strength, *, seed: int = 0, **where: str) -> None:
        super().__init__(subject, layer, factor, **where)
        self.seed = int(seed)

    def units(self, prompt_ids: torch.Tensor, width: int, dim: int) -> torch.Tensor:
        """(B, T, D) float32 unit vectors, one per token, rows of the same prompt equal."""
        drawn: dict[int, torch.Tensor] = {}
        rows = []
        for p in prompt_ids.tolist():
            if p not in drawn:
                generator = torch.Generator().manual_seed(self.seed * 1_000_003 + int(p))
                u = torch.randn((width, dim), generator=generator, dtype=torch.float32)  # (T, D)
                drawn[p] = u / torch.linalg.vector_norm(u, dim=-1, keepdim=True)
            rows.append(drawn[p])
        return torch.stack(rows)

    def target(self, hidden: torch.Tensor, s: Strength, block_in: torch.Tensor | None, prompt_ids: torch.Tensor) -> torch.Tensor:
        u = self.units(prompt_ids, hidden.shape[1], hidden.shape[2]).to(hidden.device)  # (B, T, D)
        h = hidden.to(torch.float32)
        norm = torch.linalg.vector_norm(h, dim=-1, keepdim=True)  # (B, T, 1)
        s32 = s.to(torch.float32) if isinstance(s, torch.Tensor) else s
        return (h + s32 * norm * u).to(hidden.dtype)


class Add(Intervention):
    """h_t + s·v, v a (D,) direction (read with `read_direction`): Δ at the edited tokens is |s|·‖v‖ each."""

    kind = "add"

    def __init__(self, subject: Any, layer: int, factor: Strength, *, direction: torch.Tensor, **where: str) -> None:
        super().__init__(subject, layer, factor, **where)
        self.direction = direction  # (D,)

    def target(self, hidden: torch.Tensor, s: Strength, block_in: torch.Tensor | None, prompt_ids: torch.Tensor) -> torch.Tensor:
        return hidden + s * self.direction.to(device=hidden.device, dtype=hidden.dtype)


class MeanAblate(Add):
    """(1 − s)·h_t + s·μ, μ a (D,) clean mean: s = 1 gives μ exactly at every edited token (torch.lerp, as ScaleUpdate).

    `MeanAblate(subject, layer, s, mean=μ)`; μ is kept as `direction`, the vector every token moves towards.
    """

    kind = "mean-ablate"

    def __init__(self, subject: Any, layer: int, factor: Strength, *, mean: torch.Tensor, **where: str) -> None:
        super().__init__(subject, layer, factor, direction=mean, **where)

    @property
    def mean(self) -> torch.Tensor:
        return self.direction

    def target(self, hidden: torch.Tensor, s: Strength, block_in: torch.Tensor | None, prompt_ids: torch.Tensor) -> torch.Tensor:
        return torch.lerp(hidden, self.direction.to(device=hidden.device, dtype=hidden.dtype).expand_as(hidden), s)


CLASSES: dict[str, type[Intervention]] = {cls.kind: cls for cls in (Scale, ScaleUpdate, Noise, Add, MeanAblate)}


def build(subject: Any, spec: InterventionSpec, layer: int, factor: Strength, **params: torch.Tensor) -> Intervention:
    """The intervention `spec` names at `layer`; `params` are its kind's tensors (add: direction=, mean-ablate: mean=)."""
    extra: dict[str, Any] = dict(params)
    if spec.kind == "noise":
        extra["seed"] = spec.seed
    return CLASSES[spec.kind](subject, layer, factor, positions=spec.positions, component=spec.component, **extra)


def read_direction(path: Path, width: int) -> tuple[torch.Tensor, str]:
    """`add`'s vector from a .npy or .pt file: ((width,) float32 tensor, sha256 of the file); InputError naming what is wrong.

    A .npy's header is read first, so a large array of the wrong shape is refused before its data is read; a .pt
    far larger than one vector of the model's width is refused by its size.
    """
    named = f"--direction {str(path)!r}"
    try:
        if Path(path).suffix == ".npy":
            _check_npy_header(Path(path), width, named)
        else:
            _check_size(Path(path), width, named)
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"{named} cannot be read ({exc.strerror or exc}): give a .npy or .pt file holding one vector.") from exc
    try:
        if Path(path).suffix == ".npy":
            value: Any = torch.from_numpy(np.asarray(np.load(io.BytesIO(data), allow_pickle=False)))
        else:
            value = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt or foreign file: numpy and torch raise many kinds
        raise InputError(
            f"{named} is not a readable {Path(path).suffix} array ({type(exc).__name__}): save one vector with numpy.save or torch.save."
        ) from exc
    if not isinstance(value, torch.Tensor) or value.is_complex() or value.dtype == torch.bool:
        what = f"a {value.dtype} tensor" if isinstance(value, torch.Tensor) else f"a {type(value).__name__}"
        raise InputError(f"{named} holds {what}, not a real vector: save one float vector of the model's width.")
    _check_shape(tuple(value.shape), width, named)
    return _checked_values(value, named), hashlib.sha256(data).hexdigest()


def _check_shape(shape: tuple[int, ...], width: int, named: str) -> None:
    if len(shape) != 1 or shape[0] != width:
        raise InputError(f"{named} has shape {shape}: give a 1-D vector of the model's width, shape ({width},).")


def _checked_values(value: torch.Tensor, named: str) -> torch.Tensor:
    """The (D,) vector in float32; InputError for NaN/inf, for values float32 cannot hold, and for the zero vector."""
    wide = value.to(torch.float64)
    if not bool(torch.isfinite(wide).all()):
        raise InputError(f"{named} holds non-finite values (NaN or inf): give a finite vector.")
    narrow = wide.to(torch.float32)  # the sweep adds it in float32: a value past 3.4e38 becomes inf there
    if not bool(torch.isfinite(narrow).all()):
        raise InputError(
            f"{named} holds values beyond float32's range (largest |v| is {float(wide.abs().max()):.3g}, float32 ends at "
            f"{torch.finfo(torch.float32).max:.3g}): the direction, not the strength, overflows; rescale the vector."
        )
    if not bool(narrow.any()):
        raise InputError(
            f"{named} is the zero vector: add would change nothing at any strength (every Δ 0), so no claim could be judged; "
            "give a non-zero direction."
        )
    return narrow


def _check_npy_header(path: Path, width: int, named: str) -> None:
    """Refuse a .npy of the wrong shape from its header alone (numpy.lib.format), before its data is read."""
    with path.open("rb") as handle:
        try:
            major, _ = np.lib.format.read_magic(handle)
            read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(handle)
        except Exception as exc:  # not a .npy: numpy raises ValueError and others
            raise InputError(
                f"{named} is not a readable .npy array ({type(exc).__name__}): save one vector with numpy.save or torch.save."
            ) from exc
    if dtype.hasobject:
        raise InputError(f"{named} holds Python objects, not a real vector: save one float vector of the model's width.")
    _check_shape(tuple(shape), width, named)


# A .pt of one (D,) vector: D values of at most 8 bytes, plus torch's zip container (about 1 KiB; 64 KiB allowed).
PT_OVERHEAD = 64 * 1024


def _check_size(path: Path, width: int, named: str) -> None:
    size = path.stat().st_size
    if size > 8 * width + PT_OVERHEAD:
        raise InputError(
            f"{named} is {size} bytes, more than one vector of width {width} can take ({8 * width + PT_OVERHEAD} at most): "
            f"give a 1-D vector of the model's width, shape ({width},)."
        )
