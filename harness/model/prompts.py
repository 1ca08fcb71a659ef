"""Prompts: read, check and tokenize them, refusing what would silently change a measurement.

texts = read_prompts(Path("claims/prompts.txt"))     # one prompt per line, '#' starts a comment
batch = tokenize(subject, texts)                     # Tokenized: ids per prompt, lengths, unknown tokens
line = unknown_tokens_warning(batch)                 # one line to print once, or None when every token is known
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from harness.errors import InputError
from harness.model import Subject


@dataclass(frozen=True)
class Tokenized:
    """Prompts as the subject reads them: `tokens.padded(order, device)` gives one chunk's model inputs."""

    texts: tuple[str, ...]
    ids: tuple[tuple[int, ...], ...]  # one row per prompt, unpadded, the tokenizer's defaults
    extra: tuple[dict[str, tuple[int, ...]], ...]  # other model inputs per prompt (BERT's token_type_ids)
    unknown: tuple[int, ...]  # per prompt, tokens the tokenizer could not spell ([UNK]); all 0 without an unknown token

    @property
    def n_unknown(self) -> int:
        """Tokens over all prompts that the tokenizer could not spell."""
        return sum(self.unknown)

    @property
    def lengths(self) -> tuple[int, ...]:
        return tuple(len(row) for row in self.ids)

    def padded(self, order: Sequence[int], device: torch.device) -> dict[str, torch.Tensor]:
        """Model inputs for the prompts at `order`, right-padded: each of shape (len(order), T), T the longest length."""
        width = max(len(self.ids[i]) for i in order)
        names = ["input_ids", "attention_mask", *self.extra[order[0]].keys()]
        rows: dict[str, list[list[int]]] = {name: [] for name in names}
        for i in order:
            pad = width - len(self.ids[i])
            rows["input_ids"].append(list(self.ids[i]) + [0] * pad)
            rows["attention_mask"].append([1] * len(self.ids[i]) + [0] * pad)
            for name, values in self.extra[i].items():
                rows[name].append(list(values) + [0] * pad)
        return {name: torch.tensor(value, device=device) for name, value in rows.items()}


def read_prompts(path: Path) -> list[str]:
    """Prompts from a text file: one per line; blank lines and lines starting with '#' are skipped.

    The file is UTF-8; a byte-order mark at its start is not part of the first line (utf-8-sig).
    """
    where = f"prompts file {str(path)!r}"
    if Path(path).is_dir():
        raise InputError(f"{where} is a directory: give a text file with one prompt per line.")
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError as exc:
        raise InputError(f"{where} does not exist: give a text file with one prompt per line.") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{where} is not UTF-8 text: save it as UTF-8, one prompt per line.") from exc
    except OSError as exc:
        raise InputError(f"{where} cannot be read ({exc.strerror or type(exc).__name__}): give a readable text file.") from exc
    prompts = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not prompts:
        raise InputError(f"{where} holds no prompts: write one prompt per line ('#' lines are comments).")
    return prompts


def tokenize(subject: Subject, prompts: Sequence[str]) -> Tokenized:
    """Tokenize each prompt with the subject's encoding; refuse non-text, empty, blank or over-long prompts."""
    if isinstance(prompts, str | bytes):
        raise InputError("prompts must be a list of strings, not one string: wrap it as [prompt].")
    if not isinstance(prompts, Sequence):
        raise InputError(f"prompts {prompts!r} is not a list of strings: pass e.g. ['The cat sat on the mat.'].")
    if len(prompts) == 0:
        raise InputError("no prompts given: pass at least one non-empty prompt (--prompt TEXT or --prompts FILE).")
    unknown_id = _unknown_id(subject.tokenizer)
    ids, extra, unknown = [], [], []
    for index, text in enumerate(prompts):
        if isinstance(text, bytes | bytearray):
            raise InputError(f"prompt {index} is bytes, not str: decode it first, e.g. text.decode('utf-8').")
        if not isinstance(text, str):
            raise InputError(f"prompt {index} ({text!r}) is {type(text).__name__}, not str: every prompt is text.")
        if not text.strip():
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
        unknown.append(row.count(unknown_id) if unknown_id is not None else 0)
    return Tokenized(tuple(prompts), tuple(ids), tuple(extra), tuple(unknown))


def unknown_tokens_warning(tokens: Tokenized) -> str | None:
    """One line saying how many tokens the tokenizer could not spell and in how many prompts; None if none.

    line = unknown_tokens_warning(tokens)   # print once (stderr, report header); None: nothing to say
    """
    total = sum(tokens.unknown)
    if total == 0:
        return None
    affected = [i for i, n in enumerate(tokens.unknown) if n]
    shown = ", ".join(str(i) for i in affected[:5]) + (", ..." if len(affected) > 5 else "")
    return (
        f"{total} unknown token{'s' if total != 1 else ''} in {len(affected)} of {len(tokens.ids)} prompts (prompt {shown}): "
        "the tokenizer cannot spell some characters (emoji, rare scripts), so prompts that differ only there measure alike."
    )


def _unknown_id(tokenizer: object) -> int | None:
    """The id of the tokenizer's unknown token, or None where it has no real one.

    Byte-level BPE (GPT-2) spells every text; its nominal unk_token is <|endoftext|>, the same id as
    BOS/EOS, which must not be counted as unknown.
    """
    unknown = getattr(tokenizer, "unk_token_id", None)
    if unknown is None or unknown in (getattr(tokenizer, "bos_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        return None
    return int(unknown)
