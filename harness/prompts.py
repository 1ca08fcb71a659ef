"""Prompts: read, check and tokenize them, refusing what would silently change a measurement.

texts = read_prompts(Path("claims/prompts.txt"))     # one prompt per line, '#' starts a comment
batch = tokenize(subject, texts)                     # Tokenized: ids per prompt, lengths
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from harness.errors import InputError
from harness.subjects import Subject


@dataclass(frozen=True)
class Tokenized:
    texts: tuple[str, ...]
    ids: tuple[tuple[int, ...], ...]  # one row per prompt, unpadded, the tokenizer's defaults
    extra: tuple[dict[str, tuple[int, ...]], ...]  # other model inputs per prompt (BERT's token_type_ids)

    @property
    def lengths(self) -> tuple[int, ...]:
        return tuple(len(row) for row in self.ids)

    def padded(self, order: Sequence[int], device: torch.device, repeat: int = 1) -> dict[str, torch.Tensor]:
        """Model inputs for the prompts at `order`, right-padded, the whole block repeated `repeat` times.

        Returns input_ids and attention_mask of shape (repeat * len(order), T), T the longest length.
        """
        width = max(len(self.ids[i]) for i in order)
        names = ["input_ids", "attention_mask", *self.extra[order[0]].keys()]
        rows: dict[str, list[list[int]]] = {name: [] for name in names}
        for i in order:
            pad = width - len(self.ids[i])
            rows["input_ids"].append(list(self.ids[i]) + [0] * pad)
            rows["attention_mask"].append([1] * len(self.ids[i]) + [0] * pad)
            for name, values in self.extra[i].items():
                rows[name].append(list(values) + [0] * pad)
        return {name: torch.tensor(value, device=device).repeat(repeat, 1) for name, value in rows.items()}


def read_prompts(path: Path) -> list[str]:
    """Prompts from a text file: one per line; blank lines and lines starting with '#' are skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise InputError(f"prompts file {str(path)!r} does not exist: give a text file with one prompt per line.") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"prompts file {str(path)!r} is not UTF-8 text: save it as UTF-8, one prompt per line.") from exc
    prompts = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not prompts:
        raise InputError(f"prompts file {str(path)!r} holds no prompts: write one prompt per line ('#' lines are comments).")
    return prompts


def tokenize(subject: Subject, prompts: Sequence[str]) -> Tokenized:
    """Tokenize each prompt with the tokenizer's defaults; refuse empty, blank or over-long prompts."""
    if isinstance(prompts, str):
        raise InputError("prompts must be a list of strings, not one string: wrap it as [prompt].")
    if len(prompts) == 0:
        raise InputError("no prompts given: pass at least one non-empty prompt (--prompt TEXT or --prompts FILE).")
    ids, extra = [], []
    for index, text in enumerate(prompts):
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"prompt {index} ({text!r}) is empty or whitespace only: every prompt needs some text.")
        encoded = subject.encode(text)
        row = tuple(int(t) for t in encoded["input_ids"])
        if len(row) > subject.max_length:
            raise InputError(
                f"prompt {index} is {len(row)} tokens long but {subject.name} takes at most {subject.max_length}: "
                "shorten or split it (prompts are never truncated silently)."
            )
        if len(row) < 2:
            raise InputError(
                f"prompt {index} ({text!r}) is a single token: with the first token excluded (§3.2) nothing "
                "would be measured; give at least two tokens."
            )
        ids.append(row)
        extra.append({k: tuple(int(t) for t in v) for k, v in encoded.items() if k not in ("input_ids", "attention_mask")})
    return Tokenized(tuple(prompts), tuple(ids), tuple(extra))
