"""A claims session's start-up: its settings from the options and variables, and the files it reads, checked once.

    settings_from(config)   # one Settings per model (--model repeated, or HARNESS_MODEL=a,b)
    check_files(config)     # the expectations file and the corpus, read and checked before any test
    inputs(config)          # every file the run reads, for the report plugin to refuse a report over one
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.settings import ENV_PREFIX, PYTEST, Settings, options, where_given
from harness.suite.keys import CORPUS_WARNING, EXPECTATIONS, RUNS, SETTINGS, TEXTS


def settings_from(config: pytest.Config) -> list[Settings]:
    """One Settings per model, from the options, else the HARNESS_<NAME> variables; errors name which one."""
    given: dict[str, tuple[object, str]] = {}
    several: list[tuple[str, tuple[object, str]]] = []  # (field, (texts, where)) of options that make one Settings per value
    for option in options():
        if PYTEST in option.where:
            found = where_given(option, config.getoption(option.name))
            if found is None:
                continue
            if option.several:
                texts, where = found
                texts = texts if isinstance(texts, list) else entries(str(texts), where)
                several.append((option.name, (texts, where)))
            else:
                given[option.name] = found
    out = [Settings.from_text(given)]  # type: ignore[arg-type]
    for name, (texts, where) in several:
        out = [Settings.from_text({**given, name: (text, where)}) for text in texts]  # type: ignore[dict-item]
        check_distinct([getattr(s, name) for s in out], where)
    return out


def check_distinct(models: list[str], where: str) -> None:
    """Refuse a model named twice, also when spelled two ways ('DIR' and 'DIR/', 'gpt2' and 'GPT2')."""
    from harness.model.loading import model_identity

    seen: dict[str, str] = {}
    for model in models:
        key = model_identity(model)
        if key not in seen:
            seen[key] = model
        elif seen[key] == model:
            raise HarnessError(f"{where} names {model!r} twice: give each model once.")
        else:
            raise HarnessError(f"{where} names one model twice, as {seen[key]!r} and {model!r} (both {key}): give each model once.")


def entries(text: str, where: str) -> list[str]:
    """A comma-separated variable's entries (HARNESS_MODEL=a,b); an empty one is refused, naming the whole value."""
    entries = [t.strip() for t in text.split(",")]
    empty = [n for n, entry in enumerate(entries, 1) if not entry]
    if empty and len(entries) > 1:  # a wholly empty value is the setting's own error ("is set but empty")
        raise HarnessError(
            f"{where}={text!r} has an empty entry (entry {empty[0]} of {len(entries)}): give model names separated by "
            f"single commas, without a trailing comma, e.g. {where}=minilm,random-gpt2."
        )
    return entries


def check_files(config: pytest.Config) -> None:
    """The corpus and the expectations file, read and checked once, before any test."""
    from harness import note
    from harness.judge.expectations import check_path, read_table
    from harness.model.prompts import read_prompt_file

    settings = config.stash[SETTINGS]
    path = note.EXPECTATIONS
    label = f"expectations file {str(path)!r}"
    variable = ENV_PREFIX + "EXPECTATIONS"
    flag = config.getoption("expectations")
    given = ("--expectations", flag) if flag is not None else (variable, os.environ[variable]) if variable in os.environ else None
    if given is not None:
        where, text = given
        if not text.strip():  # Path("") would be the working directory
            said = f"{where} {text!r} is empty: give" if flag is not None else f"{where} is set but empty: set it to"
            fix = "leave it out" if flag is not None else f"unset it (unset {where})"
            raise HarnessError(f"{said} the path of an expectations TOML file, or {fix} to use {path}.")
        path = Path(text)
        label = f"{where} {text!r}" if flag is not None else f"{where}={text!r}"
    check_path(path, label, creating=bool(config.getoption("update_expectations")))
    read_table(path)  # a malformed file: say so now, once
    config.stash[EXPECTATIONS] = path
    corpus = corpus_path(settings)
    try:
        read = read_prompt_file(corpus)
    except OSError as exc:
        raise HarnessError(f"prompts file {str(corpus)!r} cannot be read ({exc.strerror or exc}): give a readable text file.") from exc
    config.stash[TEXTS], config.stash[CORPUS_WARNING] = read.texts, read.warning


def inputs(config: pytest.Config) -> list[tuple[str, Path]]:
    """Every file the run reads, as (what, path): the expectations file, the corpus, each model directory's files."""
    corpus = corpus_path(config.stash[SETTINGS])
    found = [(f"the expectations file {str(config.stash[EXPECTATIONS])!r}", config.stash[EXPECTATIONS])]
    found.append((f"the prompts file {str(corpus)!r}", Path(corpus)))
    for run in config.stash[RUNS]:
        folder = Path(run.model).expanduser()
        if folder.is_dir():  # a checkpoint: config.json, the weights, the tokenizer's files
            found += [(f"{p.name!r} of the model {run.model!r}", p) for p in sorted(folder.iterdir()) if p.is_file()]
    return found


def corpus_path(settings: Settings) -> Path | str:
    """The corpus a claims run reads, as given: --prompts, else the note's (harness/note/prompts.txt, package data)."""
    from harness.note import PROMPTS

    return settings.prompts or PROMPTS
