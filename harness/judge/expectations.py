"""Expectations: the verdict each claim is expected to get on each model and layer, with a reason.

    table = load_expectations(Path("harness/note/expectations.toml"), "minilm", layer=2)
    table["C3"]          # Expectation(verdict="refuted", reason="post-LN encoder: ...", where="[minilm]")

The file has one section per model, measured at the note's layer (2), and a sub-section per other
layer measured (`[minilm.layer-4]`). A claim is held to the first entry found in: the layer's
section, the model's section (the note's layer), the note itself (`holds`). For `gpt2` every claim
is expected to hold, as the note states it. Two cases judge nothing and record a finding instead
(harness.judge.outcome.FINDING: shown, never failing):
- a model with no section, or with only other layers' sub-sections (`[M.layer-4]` alone has no
  entries for layer 2): its empirical claims (Claim.empirical: C3, C4, C5, ...) are findings, since
  the note says nothing about its weights; its structural claims (C0, C1, C2) still hold for any
  weights when the hook is right, so they are held to the note;
- a run under another intervention than the note's scaling (`--intervention noise`): only its own
  sub-section (`[minilm.noise]`) can fail a test; without one every claim is a finding;
- a layer of the layer map (`--layers`) other than the judged one (`judged`, the run's --layer), unless
  the model's section has that layer's sub-section. A verdict that differs from its expectation fails the
test in both directions. `[M.layer-2]` (the note's layer is `[M]` itself) and `[M.layer-04]` (never
read) are refused at start-up. `pytest claims/ --update-expectations` rewrites the entries of the
model and layer it ran with, keeping every comment, every other entry and the file's mode, and a
hand-written reason whose verdict did not change.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import InputError
from harness.intervene.kinds import DEFAULT_KIND, KINDS
from harness.judge.claim import CLAIMS, Claim
from harness.judge.outcome import FINDING
from harness.judge.verdict import HOLDS, NOT_APPLICABLE, REFUTED, VERDICTS
from harness.settings import NOTE_LAYER

HEADER = """\
# Expected verdict of each claim (harness.judge.claim.CLAIMS) on each model: holds, refuted or not-applicable.
# [model]: measured at the note's layer (2); [model.layer-N]: measured with --layer N. A layer without
# its own section is held to the model's section. gpt2: the note's claims as stated.
# A run whose verdict differs from its expectation fails, in both directions.
# Rewrite a model's entries from a run with: pytest claims/ --model NAME [--layer N] --update-expectations
"""
_LAYER_KEY = re.compile(r"^layer-(\d+)$")
_CLAIM_ID = re.compile(r"[A-Za-z][\w.-]*")  # a claim no test defines is allowed: its entry waits for its claim
INTERVENTION_SECTIONS = tuple(k for k in KINDS if k != DEFAULT_KIND)  # [model.noise]: expectations under another intervention


@dataclass(frozen=True)
class Expectation:
    verdict: str
    reason: str
    where: str = field(default="the note", compare=False)  # the section read: "[minilm]", "[minilm.layer-4]", "the note"


def layer_key(layer: int) -> str | None:
    """The sub-section of a model for `layer`, None for the note's layer (the model's own section)."""
    return None if layer == NOTE_LAYER else f"layer-{layer}"


def load_expectations(
    path: Path,
    model: str,
    layer: int = NOTE_LAYER,
    *,
    judged: int | None = None,
    claims: Iterable[Claim] | None = None,
    intervention: str = DEFAULT_KIND,
) -> dict[str, Expectation]:
    """The expectation of every claim (`claims`, default every registered one) for `model` at `layer`; see the
    module docstring for the order. `judged`: the run's judged layer when `layer` is one of a layer map's.
    `intervention`: a kind other than the note's scaling is judged by its own section only
    (`[minilm.noise]`, at the judged layer); without one, or for a claim it does not name, a finding.
    """
    judged_claims = {c.id: c for c in claims} if claims is not None else dict(CLAIMS)
    table = read_table(path)
    section = table.get(model, {})
    if intervention != DEFAULT_KIND:
        other_layer = judged is not None and layer != judged
        return _intervention_expectations(section.get(intervention), model, intervention, other_layer, judged_claims)
    key = layer_key(layer)
    at_layer = key is not None and key in section
    if judged is not None and layer != judged and not at_layer:
        why = f"layer map: block {layer} is not the judged layer {judged} and [{model}] has no {key or 'layer'} section"
        return {claim: Expectation(FINDING, why, "the layer map") for claim in judged_claims}
    own = {  # the note's layer's entries: not the sub-sections of other layers or other interventions
        claim: entry for claim, entry in section.items() if not _subsection(claim)
    }
    if not own:  # no section, or only sub-sections (`[M.layer-4]` alone): at this layer the note is all there is
        found = f"{path.name} has no [{model}] section: measured, not judged (--update-expectations records it)"
        if section:
            others = ", ".join(f"[{model}.{key}]" for key in section)
            found = f"{path.name} has no entries for {model} at block {layer}, only {others}: measured, not judged"
        out = {
            claim: Expectation(FINDING, found, "no section") if meta.empirical else Expectation(HOLDS, "the note's claim; structural")
            for claim, meta in judged_claims.items()
        }
    else:
        out = {claim: Expectation(HOLDS, "the note's claim, as stated") for claim in judged_claims}
    layers = [(own, f"[{model}]")]
    if at_layer:
        layers.append((section[key], f"[{model}.{key}]"))
    for entries, where in layers:
        for claim, entry in entries.items():
            if claim in judged_claims:
                verdict, reason = _entry(entry)
                out[claim] = Expectation(verdict, reason, where)
    return out


def default_expectation(claim: Claim, table: Mapping[str, Expectation]) -> Expectation:
    """The expectation of a claim the table does not hold (made after it was read): as its kind's, with no section."""
    known = next(iter(table.values()), None)
    if known is not None and known.where in ("the layer map", "no section"):
        return known if claim.empirical or known.where == "the layer map" else Expectation(HOLDS, "the claim, as stated; structural")
    if known is not None and _INTERVENTION_WHERE.match(known.where):
        return Expectation(FINDING, f"{known.where.removeprefix('no ')} does not name it: measured, not judged", known.where)
    return Expectation(HOLDS, "the claim, as stated")


_INTERVENTION_WHERE = re.compile(r"^(no )?\[[^\]]+\.(" + "|".join(map(re.escape, INTERVENTION_SECTIONS)) + r")\]$")


def _intervention_expectations(
    entries: dict | None, model: str, kind: str, other_layer: bool, claims: Mapping[str, Claim]
) -> dict[str, Expectation]:
    """Expectations under a non-default intervention: its section's entries; every other claim a finding."""
    where = f"[{model}.{kind}]"
    if other_layer or entries is None:
        why = "a layer map's layer under " + kind if other_layer else f"no {where} section: measured under {kind}, not judged"
        return {claim: Expectation(FINDING, why, f"no {where}") for claim in claims}
    out = {claim: Expectation(FINDING, f"{where} does not name it: measured, not judged", where) for claim in claims}
    for claim, entry in entries.items():
        if claim in claims:
            verdict, reason = _entry(entry)
            out[claim] = Expectation(verdict, reason, where)
    return out


def summarize(outcomes: Iterable[object] | Mapping[str, Iterable[object]]) -> dict[str, Expectation]:
    """One expectation per claim from a run's outcomes (harness.judge.outcome.ClaimOutcome records, or
    claim -> outcome dicts with verdict and reason): holds only if every test of it held."""
    if isinstance(outcomes, Mapping):
        groups = {claim: list(items) for claim, items in outcomes.items()}
    else:
        groups = {}
        for outcome in outcomes:
            groups.setdefault(outcome.claim, []).append(outcome)
    out = {}
    for claim, items in sorted(groups.items()):
        verdicts = {_field(o, "verdict") for o in items}
        if verdicts == {NOT_APPLICABLE}:
            verdict = NOT_APPLICABLE
        else:
            verdict = HOLDS if verdicts <= {HOLDS, NOT_APPLICABLE} else REFUTED
        reason = _field(next(o for o in items if _field(o, "verdict") == verdict), "reason")
        out[claim] = Expectation(verdict, reason if verdict == NOT_APPLICABLE else f"measured: {reason}")
    return out


def write_expectations(path: Path, model: str, expectations: dict[str, Expectation], *, layer: int = NOTE_LAYER) -> None:
    """Update the entries of `model` at `layer` for the claims given; see the module docstring.

    Written to a temporary file beside `path` and moved over it, so a reader never sees half a file.
    """
    import tomlkit

    read_table(path)  # refuse to edit a malformed file
    doc = tomlkit.parse(path.read_text(encoding="utf-8")) if path.exists() else tomlkit.parse(HEADER)
    if model not in doc:
        doc.add(model, tomlkit.table())
    section = doc[model]
    key = layer_key(layer)
    if key is not None:
        if key not in section:
            section.add(key, tomlkit.table())
        section = section[key]
    for claim, expected in sorted(expectations.items()):
        if claim in section and _entry(section[claim])[0] == expected.verdict:
            continue  # same verdict: keep the entry as written, reason and comments included
        entry = tomlkit.inline_table()
        entry.update({"verdict": expected.verdict, "reason": expected.reason})
        section[claim] = entry
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o666 & ~_umask()
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(tomlkit.dumps(doc))
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def check_path(path: Path, label: str, *, creating: bool) -> None:
    """Raise InputError when `path` cannot be an expectations file (read, or created when `creating`).

    `label` names the value and where it came from: "--expectations 'x.toml'" or "HARNESS_EXPECTATIONS='x.toml'".
    """
    if path.is_dir():
        raise InputError(f"{label} is a directory: give a TOML file such as harness/note/expectations.toml.")
    if path.is_file():
        return
    if not creating:
        raise InputError(f"{label} does not exist: give an existing TOML file, or add --update-expectations to create it.")
    if not path.parent.is_dir():
        raise InputError(f"{label}: its folder {str(path.parent)!r} does not exist: create it first, or give a path in an existing folder.")


def read_table(path: Path) -> dict[str, dict]:
    """The file as {model: section}, its shape checked; InputError names the first offending key."""
    if not path.exists():
        return {}
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path} is not valid TOML ({exc}): fix the line it names or restore it from git.") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} cannot be read as UTF-8 text ({exc}): give a readable TOML file.") from exc
    for model, section in table.items():
        if not isinstance(section, dict):
            raise InputError(
                f"{path}: {model} = {section!r} is not a section: write [{model}] and one line per claim, "
                'e.g. C3 = { verdict = "refuted", reason = "..." }.'
            )
        for key, value in section.items():
            if _subsection(key) and isinstance(value, dict):
                if layer := _LAYER_KEY.match(key):
                    _check_layer_key(path, model, key, int(layer.group(1)))
                for claim, entry in value.items():
                    _claim_entry(path, f"{model}.{key}", claim, entry)
            else:
                _claim_entry(path, model, key, value)
    return table


# ---------------------------------------------------------------------------------------------


def _subsection(key: str) -> bool:
    """A key of a model's section that names a sub-section (another layer's, another intervention's), not a claim."""
    return bool(_LAYER_KEY.match(key)) or key in INTERVENTION_SECTIONS


def _check_layer_key(path: Path, model: str, key: str, layer: int) -> None:
    """A layer's sub-section is named as layer_key(layer) names it; any other spelling would never be read."""
    if layer_key(layer) is None:
        raise InputError(
            f"{path}: [{model}.{key}] is block {layer}, the note's layer, whose expectations are [{model}]'s own: "
            f"move its entries into [{model}]."
        )
    if key != layer_key(layer):
        raise InputError(
            f"{path}: [{model}.{key}] would never be read: write the layer without leading zeros, [{model}.{layer_key(layer)}]."
        )


def _claim_entry(path: Path, where: str, claim: str, entry: object) -> None:
    if not _CLAIM_ID.fullmatch(claim):
        raise InputError(f"{path}: [{where}] names {claim!r}: a claim id (letters, digits, '-', '_', '.'), or a layer-N section.")
    if isinstance(entry, dict):
        unknown = sorted(set(entry) - {"verdict", "reason"})
        if unknown:
            raise InputError(f"{path}: [{where}] {claim} has {', '.join(map(repr, unknown))}: an entry holds only verdict and reason.")
        if not isinstance(entry.get("reason", ""), str):
            raise InputError(f"{path}: [{where}] {claim}'s reason {entry['reason']!r} is not text: write it in quotes.")
    verdict = entry.get("verdict") if isinstance(entry, dict) else entry
    if verdict not in VERDICTS:
        raise InputError(f"{path}: [{where}] {claim} expects {verdict!r}; allowed: {', '.join(VERDICTS)}.")


def _field(outcome: object, name: str) -> str:
    return str(outcome[name] if isinstance(outcome, Mapping) else getattr(outcome, name))


def _entry(entry: object) -> tuple[str, str]:
    if isinstance(entry, dict):
        return str(entry.get("verdict")), str(entry.get("reason", ""))
    return str(entry), ""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
