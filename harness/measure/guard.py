"""Guards on a profile's subject: as loaded, in eval mode, hook-free, and used by one profile at a time.

    @guarded                                   # on harness.measure.sweep.profile and harness.measure.clean.CleanPass.__init__
    def profile(subject, prompts, layer, factors, ...): ...
    check_same_subject(clean.subject, subject) # a clean pass belongs to the subject it was made on

Each refusal is an InputError naming what was changed and how to get a sound measurement, raised
before any forward, because each misuse below gives numbers that look right and are not:
- train mode (`subject.model.train()`): dropout makes every forward differ, so Δ measures noise
  (on minilm ≈ 17 at the sites before the scaled block, where it is 0 by construction). Refused,
  not switched back to eval behind the caller's back: the caller's model keeps the mode it was put in.
- a forward hook or pre-hook already on the model's modules (a `with Scale(...)` around the call,
  or another tool's hook): the clean pass would not be clean.
- a second profile of the same model while one runs (threads): the two register hooks on the same
  blocks, so each pass is scaled by the other's factors too.
- weights moved or cast after loading (`subject.model.to(torch.bfloat16)`, `.to("meta")`): the
  subject's dtype and device, which key the thresholds and the inputs, no longer describe them.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from torch import nn

from harness.errors import InputError
from harness.model import Subject
from harness.settings import DTYPES

F = TypeVar("F", bound=Callable[..., Any])

_LOCK = threading.Lock()  # guards _BUSY itself
_BUSY: weakref.WeakKeyDictionary[nn.Module, int] = weakref.WeakKeyDictionary()  # model -> thread id profiling it


def guarded(function: F) -> F:
    """Run `function` (whose first Subject argument is the subject) inside `exclusive(subject)`."""

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        subject = next((a for a in (*args, *kwargs.values()) if isinstance(a, Subject)), None)
        if subject is None:  # the function's own checks say what is wrong with its arguments
            return function(*args, **kwargs)
        with exclusive(subject):
            return function(*args, **kwargs)

    return run  # type: ignore[return-value]


@contextmanager
def exclusive(subject: Subject) -> Iterator[None]:
    """Hold `subject` for one profile in this thread; refuse the misuses of the module docstring.

    Re-entrant within one thread (profile makes its CleanPass inside), refused from any other.
    """
    me = threading.get_ident()
    with _LOCK:
        holder = _BUSY.get(subject.model)
        if holder is not None and holder != me:
            raise InputError(
                f"{subject.name} is being profiled by another thread: one subject runs one profile at a time, since every "
                "profile hooks the same blocks and each would be scaled by the other's factors. Profile in turn, or load "
                "one subject per thread (load_subject again)."
            )
        outer = holder is None
        if outer:
            check_state(subject)
            _BUSY[subject.model] = me
    try:
        yield
    finally:
        if outer:
            with _LOCK:
                _BUSY.pop(subject.model, None)


def check_state(subject: Subject) -> None:
    """Refuse a subject whose model is in train mode, carries a hook, or was cast or moved since loading."""
    modules = [subject.model] + ([subject.head] if subject.head is not None else [])
    training = next((name for m in modules for name, sub in m.named_modules() if sub.training), None)
    if training is not None:
        raise InputError(
            f"{subject.name}'s model is in training mode ({training or type(subject.model).__name__} has training=True, "
            "as after subject.model.train()): dropout would make every forward differ and Δ would measure noise. "
            "Call subject.model.eval() before profiling."
        )
    hooked = next((name for m in modules for name, sub in m.named_modules() if _foreign_hooks(sub)), None)
    if hooked is not None:
        raise InputError(
            f"{subject.name}'s model already has a forward hook on {hooked or type(subject.model).__name__} (a `with Scale(...)` "
            "or `with Capture(...)` around this call, or another tool's hook): the clean pass would not be clean. "
            "Call profile outside any such block; it scales and reads the sites itself."
        )
    _check_weights(subject, modules)


def check_same_subject(made_on: Subject, subject: Subject) -> None:
    """Refuse a clean pass made on another Subject than `subject`, naming what differs between the two."""
    if made_on is subject:
        return
    ours, theirs = subject.describe(), made_on.describe()
    differ = [f"{key} {theirs.get(key)}, where this one has {ours[key]}" for key in ours if ours[key] != theirs.get(key)]
    if differ:
        what = f"a different subject ({'; '.join(differ)})"
    else:  # the same name, revision, dtype and device: two loads of one model
        what = f"another load of {subject.name} (the same revision, dtype and device, but a separate copy of the model)"
    raise InputError(
        f"the clean pass was made on {what}: a clean pass is measured with the very subject it was made on. "
        "Pass that subject (clean.subject), or make a new CleanPass(subject, prompts) for this one."
    )


def _foreign_hooks(module: nn.Module) -> bool:
    """Whether `module` carries a forward hook or pre-hook that the model itself did not install.

    transformers installs its own on the blocks at the first `output_hidden_states=True` forward and
    keeps them (utils/output_capturing.py): they only record outputs, while a collector is active.
    """
    hooks = [*module._forward_hooks.values(), *module._forward_pre_hooks.values()]
    return any(not getattr(hook, "__module__", "").startswith("transformers.") for hook in hooks)


def _check_weights(subject: Subject, modules: list[nn.Module]) -> None:
    """The weights' dtype and device must be those the subject was loaded with (they key thresholds and inputs)."""
    keep = tuple(getattr(subject.model, "_keep_in_fp32_modules", None) or ())  # parts a checkpoint keeps in float32
    loaded = str(subject.dtype).removeprefix("torch.")
    # accelerate placed the blocks (--device-map): their devices differ, offloaded weights sit on meta, and its hooks
    # move each block's weights and inputs to where it runs; only the dtype is checked then.
    placed = subject.device_map is not None
    for module in modules:
        for name, weight in module.named_parameters():
            if not placed and weight.device.type == "meta":
                raise InputError(
                    f"{subject.name}'s weights are on the meta device ({name}; subject.model.to('meta') was called?): "
                    f"they hold no values. Load the subject again: load_subject({subject.name!r}, device=..., dtype=...)."
                )
            moved = weight.device.type != subject.device.type or (subject.device.index is not None and weight.device != subject.device)
            if not placed and moved:
                raise InputError(
                    f"{subject.name}'s weights are on {weight.device} ({name}) but the subject was loaded on {subject.device}: "
                    "the inputs go to the loaded device. Load it on the device you want instead of moving the model: "
                    f"load_subject({subject.name!r}, device={str(weight.device)!r}) (--device)."
                )
            if weight.is_floating_point() and weight.dtype != subject.dtype and not any(k in name for k in keep):
                now = str(weight.dtype).removeprefix("torch.")
                fix = f"To measure in {now}, load it so: load_subject({subject.name!r}, dtype={now!r}) (--dtype {now})."
                if now not in DTYPES:
                    fix = f"Load it in the dtype to measure: load_subject({subject.name!r}, dtype=...), one of {', '.join(DTYPES)}."
                raise InputError(
                    f"{subject.name}'s weights are {now} ({name}) but the subject was loaded in {loaded}: "
                    f"subject.model.to(...) changed them after loading, and the thresholds follow the loaded dtype. {fix}"
                )
