"""Where a block's hidden state travels: in its call, in its output, and which block a layer names.

    hidden = block_output(output)              # (B, T, D), whether the block returned a Tensor or a tuple
    hidden = block_input(args, kwargs)         # the hidden state a block was called with
    rest = call_without_hidden(args, kwargs)   # everything else it was called with (masks, positions)
    index = layer_index(subject, np.int64(2))  # 2: integer-like values accepted, floats and bools refused

transformers 5 blocks return the hidden-state Tensor itself; transformers 4 blocks return a tuple
whose first element is that Tensor. Indexing `output[0]` on a Tensor would take the first batch
row only, so every reader of a block output (capture, intervention, replay) goes through here.
"""

from __future__ import annotations

import operator
from typing import Any, Protocol

import numpy as np
import torch

from harness.errors import InputError


def block_output(output: Any) -> torch.Tensor:
    """The hidden state (B, T, D) in a block's output: the Tensor itself, or the first element of a tuple."""
    return output if isinstance(output, torch.Tensor) else output[0]


def block_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
    """The hidden state (B, T, D) a block was called with: its first positional argument, or `hidden_states=`."""
    return args[0] if args else kwargs["hidden_states"]


def call_without_hidden(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A block call's (args, kwargs) with the hidden state left out, so it can be replayed on another one."""
    if args:
        return args[1:], dict(kwargs)
    return (), {k: v for k, v in kwargs.items() if k != "hidden_states"}


class _HasLayers(Protocol):
    def check_layer(self, layer: int) -> int: ...


def layer_index(subject: _HasLayers, layer: object) -> int:
    """`layer` as a plain int checked against the subject's blocks; integer-like values (np.int64) are accepted.

    A float (even 2.0) or a bool is refused: a block index is counted, never measured.
    """
    if isinstance(layer, bool | np.bool_):
        raise InputError(f"layer {layer!r} is a bool, not a block index: give an integer such as 2.")
    try:
        index = operator.index(layer)  # int, np.int64, torch int scalars; not 2.0
    except TypeError as exc:
        raise InputError(f"layer {layer!r} must be an integer (a block index such as 2), not {type(layer).__name__}.") from exc
    return subject.check_layer(index)
