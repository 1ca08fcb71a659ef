"""Prompts: read, check and tokenize them, refusing what would silently change a measurement.

texts = read_prompts(Path("harness/note/prompts.txt"))     # one prompt per line, '#' starts a comment
read_prompt_file(path).warning                       # lines of invisible characters only, skipped: one line, or None
batch = tokenize(subject, texts)                     # Tokenized: ids per prompt, lengths, unknown tokens
line = unknown_tokens_warning(batch)                 # one line to print once, or None when every token is known
note = left_out_note(batch, subject.name)            # "2 of 109 prompts exceed the 256 positions of ...", or None

A prompt longer than the model's positions is never truncated: it is left out for that model
(`Tokenized.left_out` holds its index among the prompts given), and the rest are measured. When
prompts are left out and fewer than MIN_PROMPTS remain, tokenize stops with one InputError.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from harness.errors import InputError
from harness.model import Subject

# Fewest prompts a run may keep once over-long ones are left out: the claims' per-prompt shares and
# bootstrap intervals over fewer prompts would say little, and a corpus cut that far is not the one asked for.
MIN_PROMPTS = 8


@dataclass(frozen=True)
class Tokenized:
    """Prompts as the subject reads them: `tokens.padded(order, device)` gives one chunk's model inputs."""

    texts: tuple[str, ...]  # the prompts measured, in the order given, over-long ones left out
    ids: tuple[tuple[int, ...], ...]  # one row per prompt, unpadded, the tokenizer's defaults
    unknown: tuple[int, ...]  # per prompt, tokens the tokenizer could not spell ([UNK]); all 0 without an unknown token
    left_out: tuple[int, ...] = ()  # indices, among the prompts given, of those longer than the model's positions
    positions: int | None = None  # the model's positions (what the left-out prompts exceed); None: not recorded

    @property
    def n_unknown(self) -> int:
        """Tokens over all prompts that the tokenizer could not spell."""
        return sum(self.unknown)

    @property
    def n_given(self) -> int:
        """Prompts given, the left-out ones included."""
        return len(self.ids) + len(self.left_out)

    @property
    def lengths(self) -> tuple[int, ...]:
        return tuple(len(row) for row in self.ids)

    def padded(self, order: Sequence[int], device: torch.device) -> dict[str, torch.Tensor]:
        """Model inputs for the prompts at `order`, right-padded: input_ids and attention_mask, each (len(order), T)."""
        width = max(len(self.ids[i]) for i in order)
        ids = [list(self.ids[i]) + [0] * (width - len(self.ids[i])) for i in order]
        mask = [[1] * len(self.ids[i]) + [0] * (width - len(self.ids[i])) for i in order]
        return {"input_ids": torch.tensor(ids, device=device), "attention_mask": torch.tensor(mask, device=device)}


def read_prompts(path: Path) -> list[str]:
    """Prompts from a text file: one per line; blank lines and lines starting with '#' are skipped.

    Lines end at '\\n' or '\\r\\n' only: a form feed, U+2028 or U+0085 inside a line stays in that
    prompt (str.splitlines would cut it in two). A line of invisible characters alone (a zero-width
    space, a stray byte-order mark) is blank: see `read_prompt_file` for how many there were. The
    file is UTF-8; a byte-order mark at its start is not part of the first line (utf-8-sig).
    """
    return read_prompt_file(path).texts


@dataclass(frozen=True)
class PromptFile:
    """A prompts file as read: its prompts, and the lines skipped as blank that a reader may not see are blank."""

    path: Path
    texts: list[str]
    invisible: int  # lines holding only invisible characters (zero-width space, BOM, ...), skipped as blank

    @property
    def warning(self) -> str | None:
        """One line to print once (stderr, report header); None when no line was invisible-only."""
        if not self.invisible:
            return None
        lines = "line holds" if self.invisible == 1 else "lines hold"
        return (
            f"{self.invisible} {lines} only invisible characters (zero-width space, byte-order mark, other format characters) "
            f"in prompts file {str(self.path)!r}: skipped as blank, {len(self.texts)} prompts read."
        )


def read_prompt_file(path: Path) -> PromptFile:
    """`read_prompts`, also counting the invisible-only lines skipped as blank (`PromptFile.warning`)."""
    where = f"prompts file {str(path)!r}"
    if Path(path).is_dir():
        raise InputError(f"{where} is a directory: give a text file with one prompt per line.")
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")  # not read_text: its universal newlines would end a line at a lone '\r'
    except FileNotFoundError as exc:
        raise InputError(f"{where} does not exist: give a text file with one prompt per line.") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{where} is not UTF-8 text: save it as UTF-8, one prompt per line.") from exc
    except OSError as exc:
        raise InputError(f"{where} cannot be read ({exc.strerror or type(exc).__name__}): give a readable text file.") from exc
    prompts, invisible = [], 0
    for line in text.split("\n"):  # '\r\n' leaves a '\r', which strip() removes
        seen = visible(line)
        if not seen:
            invisible += bool(line.strip())  # whitespace alone is plainly blank
        elif not seen.startswith("#"):
            prompts.append(line.strip())
    if not prompts:
        raise InputError(f"{where} holds no prompts: write one prompt per line ('#' lines are comments).")
    return PromptFile(Path(path), prompts, invisible)


def visible(text: str) -> str:
    """`text` without the whitespace and invisible characters at its ends; "" when nothing in it would show.

    Invisible: whitespace, control and format characters (Unicode categories Cc, Cf: zero-width
    space, BOM, bidirectional marks, soft hyphen) and the other default-ignorable code points
    (variation selectors, Hangul fillers, tag characters).
    """
    start, stop = 0, len(text)
    while start < stop and _invisible(text[start]):
        start += 1
    while stop > start and _invisible(text[stop - 1]):
        stop -= 1
    return text[start:stop]


# Unicode's Default_Ignorable_Code_Point ranges outside categories Cc and Cf (DerivedCoreProperties.txt)
_IGNORABLE = ((0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F), (0x3164, 0x3164), (0xFE00, 0xFE0F),
              (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF))  # fmt: skip


def _invisible(char: str) -> bool:
    if char.isspace() or unicodedata.category(char) in ("Cc", "Cf"):
        return True
    point = ord(char)
    return any(low <= point <= high for low, high in _IGNORABLE)


def tokenize(subject: Subject, prompts: Sequence[str], include_first_token: bool = False) -> Tokenized:
    """Tokenize each prompt with the subject's encoding; refuse non-text, empty or blank prompts, leave out over-long ones.

    A one-token prompt is refused unless `include_first_token` (Δ then counts that token; without it nothing of the
    prompt would be measured).

    A prompt longer than `subject.max_length` is left out (its index in `left_out`), never
    truncated; an InputError when that leaves fewer than MIN_PROMPTS (see the module docstring).
    """
    if isinstance(prompts, str | bytes):
        raise InputError("prompts must be a list of strings, not one string: wrap it as [prompt].")
    if not isinstance(prompts, Sequence):
        raise InputError(f"prompts {prompts!r} is not a list of strings: pass e.g. ['The cat sat on the mat.'].")
    if len(prompts) == 0:
        raise InputError("no prompts given: pass at least one non-empty prompt (--prompt TEXT or --prompts FILE).")
    unknown_id = _unknown_id(subject.tokenizer)
    texts, ids, unknown = [], [], []
    too_long: dict[int, int] = {}  # prompt index -> its length in tokens
    for index, text in enumerate(prompts):
        if isinstance(text, bytes | bytearray):
            raise InputError(f"prompt {index} is bytes, not str: decode it first, e.g. text.decode('utf-8').")
        if not isinstance(text, str):
            raise InputError(f"prompt {index} ({text!r}) is {type(text).__name__}, not str: every prompt is text.")
        if not visible(text):
            raise InputError(
                f"prompt {index} ({text!r}) is empty or whitespace only (invisible characters count as none): every prompt needs some text."
            )
        encoded = subject.encode(text)
        row = tuple(int(t) for t in encoded["input_ids"])
        if len(row) > subject.max_length:
            too_long[index] = len(row)
            continue
        if len(row) < (1 if include_first_token else 2):
            raise InputError(
                f"prompt {index} ({text!r}) is a single token: with the first token excluded (§3.2) nothing "
                "would be measured; give at least two tokens, or count the first token (--include-first-token)."
            )
        texts.append(text)
        ids.append(row)
        unknown.append(row.count(unknown_id) if unknown_id is not None else 0)
    if too_long and len(ids) < MIN_PROMPTS:
        index, length = next(iter(too_long.items()))
        raise InputError(
            f"{len(too_long)} of {len(prompts)} prompts exceed the {subject.max_length} positions of {subject.name} "
            f"(prompt {index} is {length} tokens long), leaving {len(ids)}, fewer than the {MIN_PROMPTS} a run needs: "
            "shorten or split them (prompts are never truncated), or use a model with more positions."
        )
    return Tokenized(tuple(texts), tuple(ids), tuple(unknown), tuple(too_long), subject.max_length)


def left_out_note(tokens: Tokenized, model: str) -> str | None:
    """One line saying how many prompts were left out for exceeding the model's positions; None when none were.

    "2 of 109 prompts exceed the 256 positions of ./tiny-llama and were left out (prompts 107, 108)"
    """
    if not tokens.left_out:
        return None
    shown = ", ".join(str(i) for i in tokens.left_out[:5]) + (", ..." if len(tokens.left_out) > 5 else "")
    return (
        f"{len(tokens.left_out)} of {tokens.n_given} prompts exceed the {tokens.positions} positions of {model} "
        f"and were left out (prompt{'s' if len(tokens.left_out) > 1 else ''} {shown})"
    )


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
