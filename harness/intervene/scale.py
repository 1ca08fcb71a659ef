"""The intervention: scale one block's hidden-state output in place, inside a `with` block.

    with Scale(subject, layer=2, factor=0.5) as scale:
        subject.model(**batch)          # block 2's output is multiplied by 0.5, in place
        scale.factor = 1.5              # the note's global, kept on the object: next forward uses 1.5
        subject.model(**batch)
    # the hook is gone here, also if the forward raised or was interrupted

`factor` may also be a 1-D tensor with one factor per batch row, so many factors run in one
batched forward: row r of block `layer`'s output is multiplied by factor[r].

The hook multiplies the hidden-state tensor itself, whether the block returns a Tensor
(transformers 5) or a tuple whose first element is that tensor (transformers 4): see
`harness.model.sites.block_output`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from harness.errors import InputError
from harness.model import Subject
from harness.model.sites import block_output, layer_index
from harness.settings import check_factor

Factor = float | torch.Tensor


class Scale:
    """Context manager scaling block `layer`'s output by `factor`; see the module docstring."""

    def __init__(self, subject: Subject, layer: int, factor: Factor) -> None:
        self.layer = layer_index(subject, layer)
        self.block: nn.Module = subject.blocks[self.layer]
        self.factor = factor  # validated on set, read at every forward
        self.calls = 0  # forwards seen while entered
        self._handle: RemovableHandle | None = None

    @property
    def factor(self) -> Factor:
        return self._factor

    @factor.setter
    def factor(self, value: Factor) -> None:
        if isinstance(value, torch.Tensor):
            if value.ndim != 1 or not value.is_floating_point() or not bool(torch.isfinite(value).all()):
                raise InputError(
                    f"factor tensor of shape {tuple(value.shape)} and dtype {value.dtype} is not allowed: "
                    "give a 1-D floating tensor of finite values, one per batch row."
                )
            self._factor = value
        else:
            self._factor = check_factor(value)

    def __enter__(self) -> Scale:
        if self._handle is not None:
            raise RuntimeError("this Scale is already entered; create a new one to nest interventions")
        # prepend: scale before any capture hook on the same block reads the output
        self._handle = self.block.register_forward_hook(self._hook, prepend=True)
        return self

    def __exit__(self, *exc_info: object) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.remove()

    def _hook(self, module: nn.Module, args: Any, output: Any) -> Any:
        hidden = block_output(output)  # (B, T, D)
        factor = self._factor
        if isinstance(factor, torch.Tensor):
            if factor.shape[0] != hidden.shape[0]:
                raise InputError(
                    f"factor tensor has {factor.shape[0]} entries but the batch has {hidden.shape[0]} rows: give one factor per row."
                )
            factor = factor.to(device=hidden.device, dtype=hidden.dtype).view(-1, 1, 1)  # (B, 1, 1)
        hidden.mul_(factor)
        self.calls += 1
        return output
