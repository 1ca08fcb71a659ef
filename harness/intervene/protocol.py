"""The intervention protocol: a context manager editing one hidden state of block L, and where that state is.

    with Scale(subject, layer=2, factor=0.5) as scale:     # any kind of harness.intervene.edits
        subject.model(**batch)          # block 2's output is multiplied by 0.5
        scale.factor = 1.5              # the note's global, kept on the object: next forward uses 1.5
        subject.model(**batch)
    # the hooks are gone here, also if the forward raised or was interrupted
    component_module(subject, 2, "mlp")       # the module whose output is block 2's MLP write
    positions_mask("rest", attention_mask, (B, T), device)   # (B, T) True where tokens are edited

An `Intervention` registers its hooks on enter, rolling back a half-finished registration, and
removes exactly those handles on exit, in reverse order (`Hooks`). Its strength (`factor`) is a
float, or a 1-D tensor with one strength per batch row so many strengths run in one batched
forward; it is read at every forward and checked against the kind's range (harness.intervene.kinds).
A kind defines only `target(hidden, s, block_input, prompt_ids)`: what the edited state becomes at
every token. Then `positions` keeps that target at the edited tokens and the untouched state elsewhere.

The edited state is the block's output (`component="output"`, the note's), or the module of the
architecture row's `attention` / `mlp` whose output is that sub-layer's write into the residual
stream (after a post-sub-layer norm as in Gemma 2). The hook returns the edited tensor in place of
the output, whether the module returns a Tensor or a tuple whose first element is that tensor
(see harness.model.sites.block_output). It runs before any capture hook on the same module (prepend).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Self

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from harness.errors import InputError
from harness.intervene.kinds import COMPONENTS, KINDS, POSITIONS
from harness.model.sites import block_input, block_output, layer_index
from harness.settings import check_factor

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


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InputError(f"{name} {value!r} is not supported: choose one of {', '.join(allowed)}.")
    return value
