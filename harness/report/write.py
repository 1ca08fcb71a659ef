"""Write: the report's HTML and its JSON twin, each replaced atomically.

    html_path, json_path = write_report(outcomes, run_info, Path("reports/claims.html"))
    html_path, json_path = write_document(doc, Path("reports/claims.html"))

The JSON goes beside the HTML with the same name ending in `.json`, and is written first: if the
page cannot be drawn, the numbers are still there. A reader never sees a half-written file: each
is written to a temporary file in the same folder and moved over the old one with os.replace.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from harness.report.outcomes import ItemResult, build_document
from harness.report.render import render_html


def json_path_for(html_path: Path) -> Path:
    return html_path.with_suffix(".json")


def write_report(outcomes: list[dict], run: dict, html_path: Path, session: dict | None = None) -> tuple[Path, Path]:
    """Report on outcome dicts directly (no pytest run): each counts as a test that passed."""
    items = [ItemResult(str(o.get("nodeid", f"outcome-{n}")), outcome=o, pytest_outcome="passed") for n, o in enumerate(outcomes)]
    return write_document(build_document(items, run, session), html_path)


def write_document(doc: dict, html_path: Path) -> tuple[Path, Path]:
    """Write `doc` as JSON, then as HTML; return both paths."""
    html_path = Path(html_path)
    json_path = json_path_for(html_path)
    atomic_write(json_path, json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False) + "\n")
    atomic_write(html_path, render_html(doc))
    return html_path, json_path


def atomic_write(path: Path, text: str) -> None:
    """Replace `path` with `text` (UTF-8) in one step: a temporary file in the same folder, then os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
