"""Prompt files and texts: a BOM is not a prompt, a directory is named, unknown tokens are counted."""

from __future__ import annotations

import numpy as np
import pytest

from harness import InputError, load_subject, profile, read_prompts, tokenize
from harness.model.prompts import unknown_tokens_warning


@pytest.fixture(scope="module")
def minilm():
    return load_subject("minilm", device="cpu")


def test_byte_order_mark_is_not_a_prompt(tmp_path, minilm):
    with_bom, plain = tmp_path / "bom.txt", tmp_path / "plain.txt"
    with_bom.write_bytes("\ufeff# a comment\nThe cat sat on the mat.\n".encode())
    plain.write_text("# a comment\nThe cat sat on the mat.\n", encoding="utf-8")
    assert read_prompts(with_bom) == read_prompts(plain) == ["The cat sat on the mat."]
    with_bom.write_bytes("\ufeffThe cat sat on the mat.\n".encode())  # a BOM before a prompt does not change its tokens
    assert tokenize(minilm, read_prompts(with_bom)).ids == tokenize(minilm, read_prompts(plain)[:1]).ids


def test_directory_as_prompts_file(tmp_path):
    with pytest.raises(InputError, match=f"prompts file '{tmp_path}' is a directory: give a text file"):
        read_prompts(tmp_path)


def test_unknown_tokens_are_counted_per_prompt(minilm):
    texts = ["The cat sat on the mat.", "A smile 😀 here", "😀😁😂 and more 😀", "Plain words again"]
    tokens = tokenize(minilm, texts)
    unk = minilm.tokenizer.unk_token_id
    assert tokens.unknown == tuple(row.count(unk) for row in tokens.ids)  # independent count from the ids
    assert tokens.unknown[0] == 0 and tokens.unknown[3] == 0 and tokens.unknown[1] >= 1 and tokens.unknown[2] >= 2
    line = unknown_tokens_warning(tokens)
    assert line is not None and "\n" not in line
    assert line.startswith(f"{sum(tokens.unknown)} unknown tokens in 2 of 4 prompts (prompt 1, 2)")
    assert unknown_tokens_warning(tokenize(minilm, texts[::3])) is None
    # why it matters: emoji that the tokenizer cannot spell measure alike
    a, b = (profile(minilm, [f"Look {e} at this"], 2, [1.5]).delta for e in ("😀", "😀😁😂"))
    np.testing.assert_array_equal(a, b)


def test_byte_level_bpe_has_no_unknown_tokens():
    """GPT-2's nominal unk token is <|endoftext|> (its BOS/EOS): not counted as unknown."""
    from types import SimpleNamespace

    from harness.model.prompts import _unknown_id

    fake = SimpleNamespace(unk_token_id=50256, bos_token_id=50256, eos_token_id=50256)
    assert _unknown_id(fake) is None
    assert _unknown_id(SimpleNamespace(unk_token_id=100, bos_token_id=None, eos_token_id=102)) == 100
