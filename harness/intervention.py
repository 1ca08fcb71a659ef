"""Interventions: edit block L's hidden state (or one sub-layer's write into it) inside a `with` block.

    with Scale(subject, layer=2, factor=0.5) as scale:
        subject.model(**batch)          # block 2's output is multiplied by 0.5
        scale.factor = 1.5              # the note's global, kept on the object: next forward uses 1.5
        subject.model(**batch)
    # the hooks are gone here, also if the forward raised or was interrupted

    with Noise(subject, 2, 0.3, seed=0, positions="rest", component="mlp"):
        subject.model(**batch)          # block 2's MLP write gets 0.3·‖w_t‖·u_t at every token but the first
    edit = build(subject, InterventionSpec(kind="add", direction=path), 2, 1.0, direction=v)

One protocol for every kind (the table is harness.kinds): an `Intervention` registers its hooks on
enter, rolling back a half-finished registration, and removes exactly those handles on exit, in
reverse order. Its strength (`factor`) is a float, or a 1-D tensor with one strength per batch row
so many strengths run in one batched forward; it is read at every forward. A kind defines only
`target(hidden, s, block_input, prompt_ids)`: what the edited state becomes at every token. Then
`positions` keeps that target at the edited tokens and the untouched state elsewhere.

The edited state is the block's output (`component="output"`, the note's), or the module of the
architecture row's `attention` / `mlp` whose output is that sub-layer's write into the residual
stream (after a post-sub-layer norm as in Gemma 2). The hook returns the edited tensor in place of
the output, whether the module returns a Tensor or a tuple whose first element is that tensor
(see harness.sites.block_output). It runs before any capture hook on the same module (prepend).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from harness.errors import InputError
from harness.kinds import COMPONENTS, KINDS, POSITIONS, InterventionSpec
from harness.settings import check_factor
from harness.sites import block_input, block_output, layer_index

Strength = float | torch.Tensor


class Hooks:
    """Base of the context managers that hold hooks: `_register()` yields each handle as it registers it.

    Enter registers them; a failure part-way removes those already registered before it propagates.
    Exit removes exactly those handles, in reverse order. Entering twice at once is refused.
    """

    _handles: list[RemovableHandle]

    def _register(self) -> Iterator[RemovableHandle]:
        raise NotImplementedError

    def __enter__(self) -> Self:
        if self._handles:
            raise RuntimeError(f"this {type(self).__name__} is already entered; create a new one to nest")
        try:
            for handle in self._register():
                self._handles.append(handle)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        while self._handles:
            self._handles.pop().remove()  # reverse order of registration


class Intervention(Hooks):
    """The protocol: a context manager editing one hidden state of block `layer`; see the module docstring."""

    kind: ClassVar[str] = ""
    needs_block_input: ClassVar[bool] = False  # keep the block's input for target()

    def __init__(self, subject: Any, layer: int, factor: Strength, *, positions: str = "all", component: str = "output") -> None:
        self.layer = layer_index(subject, layer)
        self.positions = _one_of("positions", positions, POSITIONS)
        self.component = _one_of("component", component, COMPONENTS)
        self.block: nn.Module = subject.blocks[self.layer]
        self.module: nn.Module = component_module(subject, self.layer, component)
        self._model: nn.Module | None = getattr(subject, "model", None)
        self.factor = factor  # validated on set, read at every forward
        self.attention_mask: torch.Tensor | None = None  # (B, T); None: read from the model's forward call
        self.prompt_ids: torch.Tensor | None = None  # (B,) which prompt each row is (noise's seeds); None: the row index
        self.calls = 0  # forwards seen while entered
        self._handles: list[RemovableHandle] = []
        self._block_input: torch.Tensor | None = None
        self._seen_mask: torch.Tensor | None = None

    # -- strength --------------------------------------------------------------------------------

    @property
    def factor(self) -> Strength:
        return self._factor

    @factor.setter
    def factor(self, value: Strength) -> None:
        row = KINDS[self.kind]
        if isinstance(value, torch.Tensor):
            if value.ndim != 1 or not value.is_floating_point() or not bool(torch.isfinite(value).all()):
                raise InputError(
                    f"factor tensor of shape {tuple(value.shape)} and dtype {value.dtype} is not allowed: "
                    "give a 1-D floating tensor of finite values, one per batch row."
                )
            if value.numel():
                row.check(float(value.min()))
                row.check(float(value.max()))
            self._factor = value
        else:
            self._factor = row.check(check_factor(value))

    strength = factor  # the same property: "factor" is the sweep's axis, "strength" its meaning for other kinds

    # -- the protocol ------------------------------------------------------------------------------

    def target(self, hidden: torch.Tensor, s: Strength, block_in: torch.Tensor | None, prompt_ids: torch.Tensor) -> torch.Tensor:
        """(B, T, D) what the edited state becomes at every token; s is a float or (B, 1, 1) in hidden's dtype."""
        raise NotImplementedError

    def apply(self, hidden: torch.Tensor, block_in: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The edited (B, T, D) state: `target` at the tokens `positions` names, `hidden` elsewhere. Pure: hidden is not changed."""
        s: Strength = self._factor
        if isinstance(s, torch.Tensor):
            if s.shape[0] != hidden.shape[0]:
                raise InputError(
                    f"factor tensor has {s.shape[0]} entries but the batch has {hidden.shape[0]} rows: give one factor per row."
                )
            s = s.to(device=hidden.device, dtype=hidden.dtype).view(-1, 1, 1)  # (B, 1, 1)
        ids = self.prompt_ids if self.prompt_ids is not None else torch.arange(hidden.shape[0])
        edited = self.target(hidden, s, block_in, ids)
        where = positions_mask(self.positions, attention_mask, hidden.shape[:2], hidden.device)
        return edited if where is None else torch.where(where.unsqueeze(-1), edited, hidden)

    def _register(self) -> Iterator[RemovableHandle]:
        if self.positions != "all" and self.attention_mask is None and self._model is not None:
            yield self._model.register_forward_pre_hook(self._read_mask, with_kwargs=True)
        if self.needs_block_input:
            yield self.block.register_forward_pre_hook(self._keep_input, with_kwargs=True)
        # prepend: edit before any capture hook on the same module reads the output
        yield self.module.register_forward_hook(self._hook, prepend=True)

    def __exit__(self, *exc_info: object) -> None:
        super().__exit__()
        self._block_input = self._seen_mask = None

    @property
    def _handle(self) -> RemovableHandle | None:
        """The edit's own hook (the last registered), None when not entered."""
        return self._handles[-1] if self._handles else None

    def _read_mask(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._seen_mask = kwargs.get("attention_mask")

    def _keep_input(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._block_input = block_input(args, kwargs).detach().clone()  # a block may add into its input in place

    def _hook(self, module: nn.Module, args: Any, output: Any) -> Any:
        hidden = block_output(output)  # (B, T, D)
        mask = self.attention_mask if self.attention_mask is not None else self._seen_mask
        edited = self.apply(hidden, self._block_input, mask)
        self.calls += 1
        return edited if isinstance(output, torch.Tensor) else (edited, *output[1:])


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


class ReadComponent(Hooks):
    """Context manager keeping the state an intervention at (layer, component) would edit, clean.

    with ReadComponent(subject, 2, "mlp") as read:
        subject.model(**batch)
    read.value               # (B, T, D) block 2's MLP write, as the forward made it
    """

    def __init__(self, subject: Any, layer: int, component: str) -> None:
        self.module = component_module(subject, layer_index(subject, layer), _one_of("component", component, COMPONENTS))
        self.value: torch.Tensor | None = None
        self._handles: list[RemovableHandle] = []

    def _register(self) -> Iterator[RemovableHandle]:
        yield self.module.register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, args: Any, output: Any) -> None:
        self.value = block_output(output).detach().clone()


def component_module(subject: Any, layer: int, component: str) -> nn.Module:
    """The module of block `layer` whose output is the edited state: the block, or the row's attention / mlp write."""
    block = subject.blocks[layer]
    if component == "output":
        return block
    spec = subject.spec
    path = getattr(spec, component)
    module: Any = block
    for part in (path or "").split("."):
        module = getattr(module, part, None) if part and module is not None else None
    if not isinstance(module, nn.Module):
        where = f"at {type(block).__name__}.{path}" if path else "in its table row"
        raise InputError(
            f"--component {component} does not exist on {subject.name} ({spec.model_type}): no {component} write {where}; "
            "use --component output, or name the module in harness/architectures.py."
        )
    return module


def positions_mask(
    positions: str, attention_mask: torch.Tensor | None, shape: tuple[int, ...], device: torch.device
) -> torch.Tensor | None:
    """(B, T) bool, True at the edited tokens; None for "all". The first token is each row's first real one."""
    if positions == "all":
        return None
    if attention_mask is None:
        real = torch.ones(tuple(shape), dtype=torch.bool, device=device)  # no mask given: every token is real
    else:
        real = attention_mask.to(device=device, dtype=torch.bool)
    first = real & (real.to(torch.int32).cumsum(dim=1) == 1)  # (B, T)
    return first if positions == "first" else ~first


def read_direction(path: Path, width: int) -> tuple[torch.Tensor, str]:
    """`add`'s vector from a .npy or .pt file: ((width,) float32 tensor, sha256 of the file); InputError naming what is wrong."""
    named = f"--direction {str(path)!r}"
    try:
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
    if value.ndim != 1 or value.shape[0] != width:
        raise InputError(f"{named} has shape {tuple(value.shape)}: give a 1-D vector of the model's width, shape ({width},).")
    value = value.to(torch.float64)
    if not bool(torch.isfinite(value).all()):
        raise InputError(f"{named} holds non-finite values (NaN or inf): give a finite vector.")
    return value.to(torch.float32), hashlib.sha256(data).hexdigest()


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InputError(f"{name} {value!r} is not supported: choose one of {', '.join(allowed)}.")
    return value
