"""Merge: one claim report from the JSON twins of separate runs (a CI matrix, a cluster job array).

    python -m harness report merge gpt2.json pythia.json qwen.json -o matrix.html   # matrix.html + matrix.json
    doc = merge_documents([json.load(open(p)) for p in paths])                       # the same document, in Python

Each input is a claim report's JSON twin (harness.report.outcomes.FORMAT). The merged document is
built by the same `assemble` as a run's own, from every input's items and models, so it equals
(in its matrix and items) the document of one run over all those models. A model may appear in one
input only. Inputs that are not claim reports (harness.report.schema), or of another format, are
refused naming the file; so are inputs measured with different settings (layer, layers, seed,
corpus, dtype, ...: see PER_MACHINE for those that may differ), naming the setting and the files.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.errors import INTERRUPTED_EXIT, InputError
from harness.report.outcomes import FORMAT, assemble
from harness.report.schema import check_document


def merge_documents(docs: Sequence[dict], names: Sequence[str] | None = None) -> dict:
    """One document over every model of `docs` (each a claim report's JSON); InputError names the input at fault."""
    names = list(names or [f"document {n + 1}" for n in range(len(docs))])
    if not docs:
        raise InputError("report merge needs at least one claim report's JSON twin (reports/claims.json).")
    for doc, name in zip(docs, names, strict=True):
        _check(doc, name)
    _check_same_settings([doc["run"] for doc in docs], names)
    seen: dict[str, str] = {}
    models, items, runs = [], [], []
    for doc, name in zip(docs, names, strict=True):
        for info in doc["run"].get("models") or [{"model": doc["run"].get("model"), "layer": doc["run"].get("layer")}]:
            model = str(info.get("model"))
            if model in seen:
                raise InputError(f"{name} and {seen[model]} both report model {model!r}: give each model's report once.")
            seen[model] = name
            models.append(info)
        items += [(claim["claim"], item) for claim in doc["claims"] for item in claim["items"]]
        items += [(None, item) for item in doc.get("unassigned") or []]
        runs.append(doc["run"])
    first = runs[0]
    run = {
        **{k: v for k, v in first.items() if k not in ("models", "revision", "architecture", "first_token", "blocks", "source", "error")},
        "model": ", ".join(str(m.get("model")) for m in models),
        "models": models,
        "merged_from": [
            {"file": n, "model": r.get("model"), "date": r.get("date"), "command": r.get("command")}
            for n, r in zip(names, runs, strict=True)
        ],
        "date": datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat(),
    }
    errors = [f"{n}: {r['error']}" for n, r in zip(names, runs, strict=True) if r.get("error")]
    if errors:
        run["error"] = "; ".join(errors)
    sessions = [d.get("session") or {} for d in docs]
    statuses = [s.get("exitstatus") for s in sessions if isinstance(s.get("exitstatus"), int)]
    session = {
        "exitstatus": max(statuses) if statuses else None,
        "interrupted": any(s.get("interrupted") for s in sessions),
        "note": "; ".join(f"{n}: {s['note']}" for n, s in zip(names, sessions, strict=True) if s.get("note")),
        "collection_errors": [e for s in sessions for e in s.get("collection_errors") or []],
    }
    return assemble(items, run, session)


# Settings a merged report may take from each input as it was: where and how fast each job ran, not what it measured
# (factor_batch changes Δ by float32 rounding only, README "Exactness"). Every other setting is the same in one run,
# so inputs that differ in one would make a matrix no single run could give; the corpus is compared by its prompts'
# text, since the file's path differs from machine to machine.
PER_MACHINE = ("model", "device", "memory_budget_mb", "factor_batch", "prompts", "direction")
# What was edited, how, and with which vector, before how strongly: two runs of different kinds also differ in their
# factors (each kind's own strengths), and the kind is what a reader must be told differs.
FIRST = ("intervention", "interventions", "positions", "component", "direction")


def _check_same_settings(runs: Sequence[dict], names: Sequence[str]) -> None:
    """Raise InputError naming the first setting in which an input differs from the first input."""

    shown: dict[int, str] = {}  # each run's direction, named by file and sha256

    def measured(run: dict) -> dict[str, object]:
        given = run.get("settings") if isinstance(run.get("settings"), dict) else {}
        out = {k: v for k, v in given.items() if k not in PER_MACHINE}
        for key in ("layer", "hypothesis_profile"):
            if key in run and key not in out:
                out[key] = run[key]
        if isinstance(run.get("prompt_texts"), list) and run["prompt_texts"]:
            out["corpus"] = run["prompt_texts"]
        if "direction" in given:
            out["direction"], shown[id(run)] = _direction(run, given["direction"])
        return dict(sorted(out.items(), key=lambda kv: FIRST.index(kv[0]) if kv[0] in FIRST else len(FIRST)))

    first = measured(runs[0])
    for run, name in zip(runs[1:], names[1:], strict=True):
        other = measured(run)
        for key in [k for k in first if k in other]:  # a key one input lacks (an older writer) is not compared
            if first[key] != other[key]:
                what = (
                    f"direction ({shown[id(runs[0])]} and {shown[id(run)]})"
                    if key == "direction"
                    else _difference(key, first[key], other[key])
                )
                raise InputError(
                    f"{names[0]} and {name} were run with different {what}: a merged report reads as one run over all "
                    f"its models, so merge runs made with the same {'prompts' if key == 'corpus' else key}, or rerun one of them."
                )


def _direction(run: dict, path: object) -> tuple[object, str]:
    """add's vector as (what is compared, what the refusal names): its sha256, and "v.pt (sha256 ab12…)"; the path is where
    the job ran. A record without a sha256 (an older writer) is compared by its path; no direction is (None, 'none')."""
    if path is None:
        return None, "none"
    info = run.get("intervention") if isinstance(run.get("intervention"), dict) else {}
    sha = next((s for s in (run.get("direction_sha256"), info.get("direction_sha256")) if isinstance(s, str) and s), None)
    return (sha, f"{path} (sha256 {sha})") if sha else (path, str(path))


def _difference(key: str, a: object, b: object) -> str:
    """'layer (2 and 3)'; for the corpus, the counts or the first prompt that differs."""
    if key != "corpus" or not isinstance(a, list) or not isinstance(b, list):
        return f"{key} ({a!r} and {b!r})"
    if len(a) != len(b):
        return f"prompts ({len(a)} and {len(b)} prompts)"
    n = next(n for n, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
    return f"prompts (prompt {n + 1} is {str(a[n])[:40]!r} and {str(b[n])[:40]!r})"


def add_parser(subcommands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`report merge` on the CLI's subcommands (harness.cli): `report` takes `merge` as its first argument."""
    parser = subcommands.add_parser("report", help="claim reports: `report merge A.json B.json -o matrix.html`")
    _arguments(parser)
    return parser


def main(args: Sequence[str] | None = None) -> int:
    """`report merge A.json B.json ... -o out.html`: 0 when written; 2 (one line on stderr) for bad input; 130 after Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m harness report")
    _arguments(parser)
    return run(parser.parse_args(args))


def run(options: argparse.Namespace) -> int:
    """Carry out parsed `report merge` options (the CLI calls this after its own parsing)."""
    from harness.report.write import check_not_inputs, check_report_path, write_document  # the page's renderer: matplotlib

    out = Path(options.output)
    try:
        check_report_path(out, f"-o {options.output!r}")
        check_not_inputs(out, [(f"the input {p!r}", Path(p)) for p in options.reports], f"-o {options.output!r}")
        docs = [_read(Path(p)) for p in options.reports]
        doc = merge_documents(docs, options.reports)
        html, twin = write_document(doc, out)
    except InputError as exc:
        sys.stderr.write(f"report merge: {exc}\n")
        return 2
    except KeyboardInterrupt:  # write_document leaves the old pair (or none) as it was
        kept = "the earlier pair was kept as it was" if out.exists() else "nothing was written"
        sys.stderr.write(f"report merge: interrupted (Ctrl-C) before {str(out)!r} was written: {kept}.\n")
        return INTERRUPTED_EXIT
    sys.stdout.write(f"claim report: {html} (numbers: {twin.name}), {len(doc['matrix']['models'])} models from {len(docs)} reports\n")
    return 0


# ---------------------------------------------------------------------------------------------


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["merge"], help="merge: one report from the JSON twins of separate runs")
    parser.add_argument("reports", nargs="+", metavar="REPORT.json", help="claim reports' JSON twins (e.g. reports/claims.json)")
    parser.add_argument("-o", "--output", required=True, metavar="PATH.html", help="the merged page; its JSON twin goes beside it")
    parser.set_defaults(handler=run)


def _read(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"{str(path)!r} cannot be read ({getattr(exc, 'strerror', None) or exc}): give a claim report's JSON twin."
        ) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{str(path)!r} is not JSON ({exc.msg}, line {exc.lineno}): give a claim report's JSON twin (reports/claims.json)."
        ) from exc
    except RecursionError:  # the parser recurses once per level
        raise InputError(
            f"{str(path)!r} nests too deeply to be read, so it is no claim report: give a claim report's JSON twin (reports/claims.json)."
        ) from None


def _check(doc: object, name: str) -> None:
    """The format first (another format may have another shape), then the shape (harness.report.schema)."""
    if isinstance(doc, dict) and isinstance(doc.get("format"), str) and doc["format"] != FORMAT:
        raise InputError(
            f"{name} has format {doc['format']!r}; this harness merges {FORMAT!r}: "
            "rerun that model, or merge with the harness that wrote it."
        )
    check_document(doc, name)
