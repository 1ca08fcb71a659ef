"""Capture: read every named site during a forward pass, inside a `with` block.

    with Capture(subject, on_site=fn) as capture:
        subject.model(**batch)
    # fn(site_name, hidden) was called once per site, in depth order; no hook remains

    with Capture(subject) as capture:       # no callback: keep the tensors
        subject.model(**batch)
    capture.states["block.2"]               # (B, T, D)

Hooks are registered on enter and removed on exit by the exact handles returned, in reverse
order, even when the forward raises or is interrupted. Capture hooks run after any `Scale` hook on
the same block (Scale prepends itself), so `block.L` is read after the scaling.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from harness.model import Subject
from harness.model.sites import block_input, block_output

SiteFn = Callable[[str, torch.Tensor], None]


class Capture:
    """Context manager reading each site of `subject`; see the module docstring."""

    def __init__(self, subject: Subject, on_site: SiteFn | None = None, sites: tuple[str, ...] | None = None) -> None:
        self.subject = subject
        self.sites = subject.sites if sites is None else tuple(subject.sites[subject.site_index(s)] for s in sites)
        self.states: dict[str, torch.Tensor] = {}
        self._on_site = on_site  # None: keep the tensors (not a bound method: no cycle keeps `states` alive)
        self._handles: list[RemovableHandle] = []

    def __enter__(self) -> Capture:
        if self._handles:
            raise RuntimeError("this Capture is already entered; create a new one to nest captures")
        try:
            for site in self.sites:
                self._handles.append(self._register(site))
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._remove()

    def _remove(self) -> None:
        while self._handles:
            self._handles.pop().remove()  # reverse order of registration

    def _register(self, site: str) -> RemovableHandle:
        subject = self.subject
        if site == "embed":  # the input of block 0
            return subject.blocks[0].register_forward_pre_hook(
                lambda module, args, kwargs: self._read(site, block_input(args, kwargs)), with_kwargs=True
            )
        module: nn.Module = subject.final_norm if site == "final_norm" else subject.blocks[int(site.split(".")[1])]
        return module.register_forward_hook(lambda module, args, output: self._read(site, block_output(output)))

    def _read(self, site: str, hidden: torch.Tensor) -> None:
        if self._on_site is not None:
            self._on_site(site, hidden)
        else:
            self.states[site] = hidden.detach().clone()
