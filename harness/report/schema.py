"""Schema: the shape of a claim report's JSON twin that `report merge` reads, checked once before any use.

    check_document(doc, "gpt2.json")     # InputError: "gpt2.json: claims[3].items[0].status is 'bogus'; allowed: ..."

The schema is data, read by one small checker: a dict is an object (keys starting with "?" may be
absent, keys it does not name are carried unread, so a newer writer's additions pass), a one-element
list is a list of that, a tuple is one of several, a frozenset the allowed values, a type the JSON
type, a Rule a schema with a check beyond types (a profile's factor × site sizes). It names what
merging, assembling and drawing the page rely on: every other key is optional, read with defaults.
A document nested deeper than MAX_DEPTH is refused before it is walked (a real report nests about
12 levels; Python's recursion would stop a walk near 1000).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.errors import InputError
from harness.judge.outcome import STATUSES

MAX_DEPTH = 64

_NUMBER = (int, float, frozenset({"inf", "-inf", "nan"}))  # strict JSON: non-finite floats spelled out (outcome.finite)
_MAYBE_NUMBER = (None, *_NUMBER)
_MAYBE_TEXT = (None, str)


@dataclass(frozen=True)
class Rule:
    """A schema with a rule beyond types: rule(value) says why a value of the right shape is still wrong, or None."""

    schema: object
    rule: Callable[[Any], str | None]


def _profile_sizes(profile: dict) -> str | None:
    """A profile's numbers are factor × site: one row per factor, one value per site in each."""
    sites, factors = len(profile["sites"]), len(profile["factors"])
    if len(profile["clean_norm"]) != sites:
        return f"clean_norm has {len(profile['clean_norm'])} values for {sites} sites"
    for key in ("delta", "relative_delta", "delta_all_tokens"):
        if len(profile[key]) != factors or any(len(row) != sites for row in profile[key]):
            return f"{key} is not {factors} factors × {sites} sites"
    return None


_PROFILE = Rule(
    {
        "sites": [str],
        "factors": [(int, float)],
        "?layer": (None, int),
        "?model": _MAYBE_TEXT,
        "clean_norm": [_MAYBE_NUMBER],
        "delta": [[_MAYBE_NUMBER]],
        "relative_delta": [[_MAYBE_NUMBER]],
        "delta_all_tokens": [[_MAYBE_NUMBER]],
    },
    _profile_sizes,
)
_EVIDENCE = {  # what the page draws from; any other key is shown as a row of numbers
    "?profile": _PROFILE,
    "?layers": [int],
    "?sites": [str],
    "?delta": list,
    "?prompt_lengths": [_MAYBE_NUMBER],
    "?predicted_lengths": [_MAYBE_NUMBER],
    "?predicted_ratio": [_MAYBE_NUMBER],
    "?dose_response": dict,
    "?kl_by_layer": dict,
    "?token_norms": dict,
}
_EXAMPLE = {"factor": _MAYBE_NUMBER, "verdict": str, "status": str, "margin": _MAYBE_NUMBER, "margin_text": str}
_ITEM = {
    "nodeid": str,
    "status": frozenset(STATUSES),
    "pytest_outcome": str,
    "message": str,
    "problems": [str],
    "?model": _MAYBE_TEXT,
    "?layer": (None, int),
    "?margin": _MAYBE_NUMBER,
    "?margin_text": _MAYBE_TEXT,
    "?reason": _MAYBE_TEXT,
    "?statistic": _MAYBE_NUMBER,
    "?threshold": _MAYBE_NUMBER,
    "?ci95": (None, [_MAYBE_NUMBER]),
    "?fragile": (None, bool),
    "?factor": _MAYBE_NUMBER,
    "?source": _MAYBE_TEXT,
    "?statement": _MAYBE_TEXT,
    "?expected": _MAYBE_TEXT,
    "?expectation_reason": _MAYBE_TEXT,
    "?evidence": (None, _EVIDENCE),
    "?thresholds": (None, dict),
    "?examples": [_EXAMPLE],
}
_MODEL = {"model": str, "?layer": (None, int), "?layers": (None, [int]), "?blocks": (None, int), "?error": _MAYBE_TEXT}
SCHEMA = {
    "format": str,
    "run": {
        "?model": _MAYBE_TEXT,
        "?models": [_MODEL],
        "?layer": (None, int),
        "?error": _MAYBE_TEXT,
        "?settings": dict,
        "?prompt_texts": [str],
    },
    "claims": [{"claim": str, "items": [_ITEM]}],
    "?unassigned": (None, [_ITEM]),
    "?session": (
        None,
        {
            "?exitstatus": (None, int),
            "?interrupted": (None, bool),
            "?note": _MAYBE_TEXT,
            "?collection_errors": (None, [{"nodeid": str, "message": str}]),
        },
    ),
}


def check_document(doc: object, name: str) -> None:
    """Raise InputError naming the first place where `doc` departs from SCHEMA (or nests too deeply)."""
    if _depth(doc) > MAX_DEPTH:
        raise InputError(f"{name} nests deeper than {MAX_DEPTH} levels, so it is no claim report: give the JSON twin a claims run writes.")
    why = _mismatch(doc, SCHEMA, "")
    if why is not None:
        raise InputError(f"{name} is not a claim report: {why}; give the JSON twin a claims run writes (reports/claims.json).")


def _mismatch(value: object, schema: object, where: str) -> str | None:
    """Why `value` at `where` does not fit `schema`, or None when it does."""
    if isinstance(schema, Rule):
        why = _mismatch(value, schema.schema, where)
        if why is not None:
            return why
        broken = schema.rule(value)
        return None if broken is None else f"{where}: {broken}"
    if isinstance(schema, tuple):
        for option in schema:
            if _mismatch(value, option, where) is None:
                return None
        return f"{where or 'the document'} is {_shown(value)}; expected {' or '.join(_name(o) for o in schema)}"
    if isinstance(schema, frozenset):
        if isinstance(value, str) and value in schema:
            return None
        return f"{where} is {_shown(value)}; allowed: {', '.join(sorted(schema, key=str))}"
    if isinstance(schema, list):
        if not isinstance(value, list):
            return f"{where or 'the document'} is {_shown(value)}; expected a list"
        for n, element in enumerate(value):
            why = _mismatch(element, schema[0], f"{where}[{n}]")
            if why is not None:
                return why
        return None
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return f"{where or 'the document'} is {_shown(value)}; expected an object"
        for key, inner in schema.items():
            name = key.removeprefix("?")
            if name not in value:
                if key.startswith("?"):
                    continue
                return f"{f'{where}.' if where else ''}{name} is missing"
            why = _mismatch(value[name], inner, f"{where}.{name}" if where else name)
            if why is not None:
                return why
        return None
    if _is(value, schema):
        return None
    return f"{where} is {_shown(value)}; expected {_name(schema)}"


def _is(value: object, kind: object) -> bool:
    if kind is None:
        return value is None
    if kind in (int, float):  # a JSON number; true and false are not numbers
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, kind)  # type: ignore[arg-type]


def _name(schema: object) -> str:
    if isinstance(schema, Rule):
        return _name(schema.schema)
    if schema is None:
        return "null"
    if isinstance(schema, frozenset):
        return "one of " + ", ".join(sorted(schema, key=str))
    if isinstance(schema, list):
        return "a list"
    if isinstance(schema, dict):
        return "an object"
    if isinstance(schema, tuple):
        return " or ".join(_name(s) for s in schema)
    names = {str: "text", int: "a number", float: "a number", bool: "true or false", list: "a list", dict: "an object"}
    return names.get(schema, getattr(schema, "__name__", str(schema)))  # type: ignore[call-overload]


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _depth(doc: object) -> int:
    """How deeply lists and objects nest in `doc`, walked without recursion."""
    deepest, stack = 0, [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH:
                return depth
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))
    return deepest
