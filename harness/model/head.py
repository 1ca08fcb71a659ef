"""The LM head: from the base model's last hidden state to the logits, as the checkpoint's own head model does.

    subject.head                          # LMHead, or None (no head weights in the checkpoint)
    logits = subject.logits(last_hidden)  # (..., D) -> (..., V), equal to HF's `lm(**batch).logits` bit for bit

Which modules make the head, and in what order, is data: the row's `head` (module names on the
*ForCausalLM / *ForMaskedLM model) and `logit_softcap` (Gemma 2's final soft-capping, a config
attribute). The base model's last output already carries the final norm and anything after it
(OPT's project_out), so the head starts there. A causal LM's logits at position t predict token t+1;
a masked LM's predict token t itself (`predicts`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from harness.model.architectures import Architecture


class LMHead(nn.Module):
    """The modules after the base model, applied in order, then the optional soft-capping."""

    def __init__(self, modules: Sequence[nn.Module], softcap: float | None, predicts: str, describe: str) -> None:
        super().__init__()
        self.layers = nn.ModuleList(modules)
        self.softcap = softcap  # logits -> cap · tanh(logits / cap) (Gemma 2); None: none
        self.predicts = predicts  # "next token" (causal LM) or "same token" (masked LM)
        self.describe = describe  # in words, for describe() and the CLI

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:  # (..., D) -> (..., V)
        for layer in self.layers:
            hidden = layer(hidden)
        if self.softcap is not None:  # the very operations of Gemma2ForCausalLM.forward, in its order
            hidden = hidden / self.softcap
            hidden = torch.tanh(hidden)
            hidden = hidden * self.softcap
        return hidden


def head_from(lm: nn.Module, spec: Architecture) -> LMHead:
    """The head of a loaded *ForCausalLM / *ForMaskedLM model, per the row's `head` and `logit_softcap`."""
    modules = []
    for dotted in spec.head:
        module: object = lm
        for part in dotted.split("."):
            module = getattr(module, part)
        modules.append(module)
    softcap = getattr(lm.config, spec.logit_softcap, None) if spec.logit_softcap else None
    causal = spec.kind == "decoder"
    kind = "causal LM head" if causal else "masked-LM head"
    tied = " (tied to the input embeddings)" if getattr(lm.config, "tie_word_embeddings", False) else ""
    capped = f", logits soft-capped at {softcap:g}" if softcap is not None else ""
    return LMHead(modules, softcap, "next token" if causal else "same token", f"{kind} {' → '.join(spec.head)}{tied}{capped}")
