"""Merge: one claim report from the JSON twins of separate runs (a CI matrix, a cluster job array).

    python -m harness report merge gpt2.json pythia.json qwen.json -o matrix.html   # matrix.html + matrix.json
    doc = merge_documents([json.load(open(p)) for p in paths])                       # the same document, in Python

Each input is a claim report's JSON twin (harness.report.outcomes.FORMAT). The merged document is
built by the same `assemble` as a run's own, from every input's items and models, so it equals
(in its matrix and items) the document of one run over all those models. A model may appear in one
input only. Inputs that are not claim reports, or of another format, are refused naming the file.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.errors import InputError
from harness.report.outcomes import FORMAT, assemble


def merge_documents(docs: Sequence[dict], names: Sequence[str] | None = None) -> dict:
    """One document over every model of `docs` (each a claim report's JSON); InputError names the input at fault."""
    names = list(names or [f"document {n + 1}" for n in range(len(docs))])
    if not docs:
        raise InputError("report merge needs at least one claim report's JSON twin (reports/claims.json).")
    seen: dict[str, str] = {}
    models, items, runs = [], [], []
    for doc, name in zip(docs, names, strict=True):
        _check(doc, name)
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


def add_parser(subcommands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`report merge` on the CLI's subcommands (harness.cli): `report` takes `merge` as its first argument."""
    parser = subcommands.add_parser("report", help="claim reports: `report merge A.json B.json -o matrix.html`")
    _arguments(parser)
    return parser


def main(args: Sequence[str] | None = None) -> int:
    """`report merge A.json B.json ... -o out.html`: 0 when written; 2 (one line on stderr) for bad input."""
    parser = argparse.ArgumentParser(prog="python -m harness report")
    _arguments(parser)
    return run(parser.parse_args(args))


def run(options: argparse.Namespace) -> int:
    """Carry out parsed `report merge` options (the CLI calls this after its own parsing)."""
    from harness.report.write import check_report_path, write_document  # the page's renderer: matplotlib

    try:
        out = Path(options.output)
        check_report_path(out, f"-o {options.output!r}")
        out_json = out.with_suffix(".json").resolve()
        if any(Path(p).resolve() == out_json for p in options.reports):
            raise InputError(
                f"-o {options.output!r} would write its JSON twin over the input {str(out.with_suffix('.json'))!r}: "
                "give the merged page another name, e.g. 'merged.html'."
            )
        docs = [_read(Path(p)) for p in options.reports]
        doc = merge_documents(docs, options.reports)
        html, twin = write_document(doc, out)
    except InputError as exc:
        sys.stderr.write(f"report merge: {exc}\n")
        return 2
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


def _check(doc: object, name: str) -> None:
    if not isinstance(doc, dict) or not isinstance(doc.get("claims"), list) or not isinstance(doc.get("run"), dict) or "format" not in doc:
        raise InputError(f"{name} is not a claim report: give the JSON twin a claims run writes (reports/claims.json).")
    if doc["format"] != FORMAT:
        raise InputError(
            f"{name} has format {doc['format']!r}; this harness merges {FORMAT!r}: "
            "rerun that model, or merge with the harness that wrote it."
        )
