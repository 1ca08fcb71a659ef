"""Device and dtype as the user wrote them, checked before anything is loaded.

resolve_device("cuda:1")                      # torch.device("cuda", 1), or an InputError naming the value
resolve_dtype("auto", checkpoint=torch.bfloat16)  # the checkpoint's own dtype
"""

from __future__ import annotations

import re

import torch

from harness.errors import InputError
from harness.settings import DTYPES

DEVICE_FORMS = "auto, cpu, cuda or cuda:N (N a GPU index such as 0)"
DTYPE_CHOICES = tuple(dict.fromkeys(("auto", *DTYPES)))  # "auto": the checkpoint's own dtype
_DEVICE = re.compile(r"(auto|cpu|cuda)(?::(\d+))?")  # no spaces, no sign, no fraction


def resolve_device(device: str) -> torch.device:
    """The torch device for auto / cpu / cuda / cuda:N; the form is checked before CUDA is asked about."""
    match = _DEVICE.fullmatch(device) if isinstance(device, str) else None
    if match is None or (match[2] is not None and match[1] != "cuda"):
        raise InputError(f"device {device!r} is not a device this harness can use: write {DEVICE_FORMS}.")
    kind, index = match[1], None if match[2] is None else int(match[2])
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise InputError(
            f"device {device!r} was asked for but CUDA is not available here "
            f"(torch {torch.__version__}): use --device cpu or --device auto."
        )
    count = torch.cuda.device_count()
    if index is not None and index >= count:
        raise InputError(f"device {device!r} does not exist: this machine has cuda:0 to cuda:{count - 1}.")
    return torch.device("cuda", index) if index is not None else torch.device("cuda")


def resolve_dtype(dtype: str, checkpoint: torch.dtype | None = None) -> torch.dtype:
    """The torch dtype for a name in DTYPE_CHOICES; "auto" is `checkpoint` (float32 when it records none)."""
    if dtype not in DTYPE_CHOICES:
        raise InputError(f"dtype {dtype!r} is not supported: choose one of {', '.join(DTYPE_CHOICES)}.")
    if dtype != "auto":
        return getattr(torch, dtype)
    if checkpoint is None:
        return torch.float32  # the checkpoint does not say: HF's own default
    if str(checkpoint).removeprefix("torch.") not in DTYPES:
        raise InputError(
            f"dtype 'auto' would be the checkpoint's {str(checkpoint).removeprefix('torch.')}, which this harness "
            f"does not run: give --dtype as one of {', '.join(DTYPES)}."
        )
    return checkpoint
