"""Expectations: the verdict each claim is expected to get on each model, with a reason.

    table = load_expectations(Path("claims/expectations.toml"), "minilm")
    table["C3"]          # Expectation(verdict="refuted", reason="post-LN encoder: ...")

For `gpt2` every claim is expected to hold, as the note states it. For other models the file
records what was measured. A model with no section is judged against the note: every claim
`holds`. A verdict that differs from its expectation fails the test in both directions.
`pytest claims/ --update-expectations` rewrites the model's section from a run.
"""

from __future__ import annotations

import json
import os
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from harness.errors import InputError
from harness.judgement import CLAIMS, HOLDS, VERDICTS

HEADER = """\
# Expected verdict of each claim (harness.judgement.CLAIMS) on each model: holds, refuted or not-applicable.
# gpt2: the note's claims as stated. Other models: what a run measured, with a one-line reason.
# A run whose verdict differs from its expectation fails, in both directions.
# Rewrite a model's section from a run with: pytest claims/ --model NAME --update-expectations
"""


@dataclass(frozen=True)
class Expectation:
    verdict: str
    reason: str


def load_expectations(path: Path, model: str) -> dict[str, Expectation]:
    """The expectation of every claim for `model`; claims without an entry default to the note's."""
    table = _read(path)
    section = table.get(model, {})
    out = {claim: Expectation(HOLDS, "the note's claim, as stated") for claim in CLAIMS}
    for claim, entry in section.items():
        if claim not in CLAIMS:
            raise InputError(f"{path}: [{model}] names claim {claim!r}; known claims are {', '.join(CLAIMS)}.")
        verdict = entry.get("verdict") if isinstance(entry, dict) else entry
        if verdict not in VERDICTS:
            raise InputError(f"{path}: [{model}] {claim} expects {verdict!r}; allowed: {', '.join(VERDICTS)}.")
        reason = entry.get("reason", "") if isinstance(entry, dict) else ""
        out[claim] = Expectation(verdict, reason)
    return out


def summarize(outcomes: dict[str, list[dict]]) -> dict[str, Expectation]:
    """One expectation per claim from a run's outcomes: holds only if every test of it held."""
    out = {}
    for claim, items in sorted(outcomes.items()):
        verdicts = {o["verdict"] for o in items}
        if verdicts == {"not-applicable"}:
            verdict = "not-applicable"
        else:
            verdict = HOLDS if verdicts <= {HOLDS} else "refuted"
        example = next((o for o in items if o["verdict"] == verdict), items[0])
        reason = example["expectation_reason"] if verdict == "not-applicable" else f"measured: {example['reason']}"
        out[claim] = Expectation(verdict, reason)
    return out


def write_expectations(path: Path, model: str, expectations: dict[str, Expectation]) -> None:
    """Update `model`'s entries for the claims given, keeping everything else; written atomically."""
    table = _read(path)
    table[model] = {**table.get(model, {}), **{claim: {"verdict": e.verdict, "reason": e.reason} for claim, e in expectations.items()}}
    lines = [HEADER]
    for name in sorted(table, key=lambda m: (m != "gpt2", m)):
        lines.append(f"\n[{json.dumps(name)}]\n" if not name.replace("-", "").replace("_", "").isalnum() else f"\n[{name}]\n")
        for claim, entry in sorted(table[name].items()):
            verdict, reason = (entry["verdict"], entry.get("reason", "")) if isinstance(entry, dict) else (entry, "")
            lines.append(f"{claim} = {{ verdict = {json.dumps(verdict)}, reason = {json.dumps(reason, ensure_ascii=False)} }}\n")
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".expectations-", suffix=".toml")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write("".join(lines))
    os.replace(temp, path)


def _read(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path} is not valid TOML ({exc}): fix the line it names or restore it from git.") from exc
