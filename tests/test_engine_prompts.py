"""Prompt files and texts: a BOM is not a prompt, a directory is named, unknown tokens are counted."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


# Every character str.splitlines ends a line at (Python's docs, "Line boundaries"); a prompts file ends one at "\n" and "\r\n" only
LINE_BREAKS = ("\v", "\f", "\r", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")
INVISIBLE = ("\u200b", "\ufeff", "\u200c", "\u200d", "\u2060", "\u00ad", "\u200e", "\u202e", "\ufe0f", "\u3164", "\x00")


def test_line_breaks_inside_a_line_stay_in_its_prompt_and_invisible_lines_are_blank(tmp_path, minilm):
    """Issue 19 row 7: one prompt per '\\n' line; a line of invisible characters is blank, and counted."""
    from harness.model.prompts import read_prompt_file

    path = tmp_path / "p.txt"
    inside = [f"Before{c}after the break." for c in LINE_BREAKS]
    path.write_bytes(("\r\n".join(inside[:4]) + "\n" + "\n".join(INVISIBLE) + "\n  \n" + "\n".join(inside[4:]) + "\r\n").encode())
    read = read_prompt_file(path)
    assert read.texts == read_prompts(path) == [line.strip() for line in inside]  # a lone '\r' inside a line stays too
    assert len(str.splitlines("\n".join(inside))) == 2 * len(inside)  # what str.splitlines would have made of them
    assert read.invisible == len(INVISIBLE)  # the whitespace-only line is plainly blank, not counted
    assert read.warning == (
        f"{len(INVISIBLE)} lines hold only invisible characters (zero-width space, byte-order mark, other format characters) "
        f"in prompts file {str(path)!r}: skipped as blank, {len(inside)} prompts read."
    )
    path.write_text("\u200b# a comment behind a zero-width space\nThe cat sat.\n", encoding="utf-8")
    assert read_prompt_file(path).texts == ["The cat sat."] and read_prompt_file(path).warning is None
    path.write_text("\u200b\n\ufeff\n", encoding="utf-8")
    with pytest.raises(InputError, match="holds no prompts"):
        read_prompts(path)
    for text in INVISIBLE:  # the API refuses such a prompt as it refuses a blank one
        with pytest.raises(InputError, match="is empty or whitespace only"):
            tokenize(minilm, [text * 3])


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(
        st.lists(st.one_of(st.sampled_from(LINE_BREAKS + INVISIBLE + (" ", "\t", "#")), st.characters(codec="utf-8")), max_size=12).map(
            "".join
        ),
        min_size=1,
        max_size=8,
    ),
    crlf=st.booleans(),
)
def test_fuzzed_prompt_text_splits_at_newlines_only(lines, crlf, tmp_path_factory):
    """Any text, every Unicode line separator inside lines: the prompts are the '\\n' lines that show something, never more."""
    from harness.model.prompts import read_prompt_file, visible

    lines = [line.replace("\n", "") for line in lines]
    path = tmp_path_factory.mktemp("fuzz") / "p.txt"
    path.write_bytes(("\r\n" if crlf else "\n").join(lines).encode("utf-8"))
    # the oracle, written from the rule: a BOM starting the file is no text; strip each '\n' line (and its '\r' before
    # the '\n'); skip it when nothing visible is left or it starts with '#'
    lines[0] = lines[0].removeprefix("\ufeff")
    kept = [line.strip() for line in lines]
    expected = [line for line in kept if visible(line) and not visible(line).startswith("#")]
    if not expected:
        with pytest.raises(InputError, match="holds no prompts"):
            read_prompt_file(path)
        return
    read = read_prompt_file(path)
    assert read.texts == expected
    assert len(read.texts) <= len(lines)
    assert all(not any(c in text for c in "\n") for text in read.texts)
