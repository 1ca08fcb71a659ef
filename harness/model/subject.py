"""The Subject: a loaded model, its tokenizer, its named sites and the rule for its first token.

subject.sites                  # ("embed", "block.0", ..., "final_norm")
subject.encode("The cat sat")  # {"input_ids": [...], "attention_mask": [...]}: the one text-to-ids path
subject.first.describe         # "BOS '<s>' (id 1), added by the tokenizer"
"""

from __future__ import annotations

import functools
import inspect
import operator
from dataclasses import dataclass

import torch
from torch import nn

from harness.errors import InputError
from harness.model.architectures import Architecture

PREPEND_BOS = ("auto", "yes", "no")  # the tokenizer's default; always a BOS first; never one
_PROBE = "The cat sat on the mat."  # any text of a few words: the tokenizer's additions show around it


@dataclass(frozen=True)
class FirstToken:
    """What every prompt starts with on this subject, and how `encode` gets there."""

    policy: str  # "auto" | "yes" | "no" (the prepend_bos option)
    added: int | None  # id the tokenizer itself puts before the text (BOS or [CLS]); None: nothing
    start: int | None  # id every encoded prompt starts with under `policy`; None: the prompt's own first token
    describe: str  # in words, for the header and C5's section


@dataclass(frozen=True)
class Subject:
    """A loaded model ready for measurement; see harness.model."""

    name: str  # as asked for: "gpt2", "minilm", "random-gpt2", a Hub id or a directory
    model: nn.Module  # the base model (GPT2Model, LlamaModel, BertModel, ...), eval mode; sites and hooks live here
    tokenizer: object  # a HuggingFace tokenizer with a pad token set
    blocks: nn.ModuleList  # the transformer blocks, in order
    final_norm: nn.Module | None  # the final norm; None where the architecture or checkpoint has none
    spec: Architecture  # the table row this model was loaded by (harness/model/architectures.py)
    revision: str  # Hub commit, or "sha256:<16 hex>" of the weights, or "seed:<n>"
    source: str  # where the weights came from, in words
    max_length: int  # context length in tokens
    device: torch.device
    dtype: torch.dtype
    first: FirstToken  # the first-token rule (BOS / [CLS] / none)
    head: nn.Module | None = None  # the LM head (harness.model.head.LMHead); None: the checkpoint has none
    head_note: str = "no LM head loaded"  # what the head is, or why there is none, in words

    def logits(self, last_hidden: torch.Tensor) -> torch.Tensor:
        """(..., D) the base model's last output (after the final norm) -> (..., V) logits, as HF's head model gives them."""
        if self.head is None:
            raise InputError(f"{self.name} has {self.head_note}: the predictions (kl, top1_agreement, nll_change) cannot be measured.")
        return self.head(last_hidden)

    @property
    def architecture(self) -> str:
        return self.spec.model_type

    @property
    def n_blocks(self) -> int:
        return len(self.blocks)

    @property
    def sites(self) -> tuple[str, ...]:
        names = ["embed"] + [f"block.{i}" for i in range(self.n_blocks)]
        if self.final_norm is not None:
            names.append("final_norm")
        return tuple(names)

    def site_index(self, site: str) -> int:
        if site not in self.sites:
            raise InputError(f"site {site!r} does not exist on {self.name}: choose one of {', '.join(self.sites)}.")
        return self.sites.index(site)

    def check_layer(self, layer: object) -> int:
        """`layer` as a block index; integer-like values (numpy integers) are accepted, floats and bools are not."""
        allowed = f"give an integer from 0 to {self.n_blocks - 1}"
        if isinstance(layer, bool):
            raise InputError(f"layer {layer!r} must be an integer, not a bool: {allowed}.")
        try:
            index = operator.index(layer)  # int, numpy.int64, torch integer scalars; never 2.0
        except TypeError:
            raise InputError(f"layer {layer!r} must be an integer: {allowed} (a block index of {self.name}).") from None
        if not 0 <= index < self.n_blocks:
            raise InputError(f"layer {index} is outside {self.name}'s blocks: {allowed}.")
        return index

    def encode(self, text: str) -> dict[str, list[int]]:
        """Model inputs for one prompt, unpadded: input_ids (and e.g. token_type_ids), as the subject reads it.

        The one place that turns text into ids. The first token follows `self.first`: the
        tokenizer's own BOS / [CLS] ("auto"), a BOS ensured ("yes") or the tokenizer's removed ("no").
        Keys the base model's forward does not take (a decoder's token_type_ids) are dropped.
        """
        encoded = {k: list(v) for k, v in self.tokenizer(text).items() if k in _model_inputs(type(self.model))}
        ids = encoded["input_ids"]
        first = self.first
        if first.policy == "no" and first.added is not None and ids[:1] == [first.added]:
            encoded = {k: v[1:] for k, v in encoded.items()}
        elif first.start is not None and ids[:1] != [first.start]:
            # the new token joins the segment of the old first one: mask 1, same token type
            encoded = {k: [first.start if k == "input_ids" else (v[0] if v else 1), *v] for k, v in encoded.items()}
        return encoded

    @property
    def dtype_name(self) -> str:
        """The resolved dtype as a name ('float32', 'bfloat16', 'float16'): never 'auto', which loading resolves."""
        return str(self.dtype).removeprefix("torch.")

    def describe(self) -> dict[str, object]:
        """What makes a run on this subject repeatable, for headers and reports."""
        return {
            "model": self.name,
            "architecture": self.architecture,
            "revision": self.revision,
            "source": self.source,
            "blocks": self.n_blocks,
            "device": str(self.device),
            "dtype": self.dtype_name,
            "first_token": self.first.describe,
            "prepend_bos": self.first.policy,
            "lm_head": self.head_note,
        }


def first_token(tokenizer: object, spec: Architecture, model: str, policy: str) -> FirstToken:
    """Find what the tokenizer puts first (by encoding a probe with and without special tokens) and apply `policy`."""
    check_prepend_bos(policy)
    with_special = list(tokenizer(_PROBE)["input_ids"])
    plain = list(tokenizer(_PROBE, add_special_tokens=False)["input_ids"])
    special_ids = set(getattr(tokenizer, "all_special_ids", ()))
    added = with_special[0] if with_special and with_special[0] in special_ids and with_special[:1] != plain[:1] else None
    label = "CLS token" if spec.kind == "encoder" else "BOS"
    if added is not None:
        said = f"{label} {tokenizer.convert_ids_to_tokens(added)!r} (id {added})"
        if policy == "no":
            return FirstToken(policy, added, None, f"the prompt's first token (the tokenizer's {said} removed by prepend_bos='no')")
        return FirstToken(policy, added, added, f"{said}, added by the tokenizer")
    if policy != "yes":
        return FirstToken(policy, None, None, f"the prompt's first token (the tokenizer adds no {label})")
    start = getattr(tokenizer, "bos_token_id", None)
    if start is None:
        start = getattr(tokenizer, "cls_token_id", None)
    if start is None:
        raise InputError(
            f"prepend_bos 'yes' cannot be met on {model}: its tokenizer defines no BOS token (bos_token is None) "
            "and adds none itself. Use prepend_bos 'auto' or 'no' (--prepend-bos), or give a tokenizer with a bos_token."
        )
    said = f"BOS {tokenizer.convert_ids_to_tokens(start)!r} (id {start})"
    return FirstToken(policy, None, start, f"{said}, prepended by prepend_bos='yes' (the tokenizer adds none)")


def check_prepend_bos(value: object) -> str:
    if value not in PREPEND_BOS:
        raise InputError(f"prepend_bos {value!r} is not allowed: choose one of {', '.join(PREPEND_BOS)} (--prepend-bos).")
    return value  # type: ignore[return-value]


@functools.cache
def _model_inputs(model_class: type[nn.Module]) -> frozenset[str]:
    """The inputs the base model's forward names (input_ids, attention_mask, token_type_ids, ...)."""
    names = frozenset(inspect.signature(model_class.forward).parameters)
    return names | {"input_ids", "attention_mask"}
