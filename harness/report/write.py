"""Write: the report's HTML and its JSON twin, as one pair: both from this run, or both as they were.

    html_path, json_path = write_report(outcomes, run_info, Path("reports/claims.html"))
    html_path, json_path = write_document(doc, Path("reports/claims.html"))
    check_report_path(Path("out.json"))      # InputError: not .html (its twin would be itself)

The JSON goes beside the HTML with the same name ending in `.json`. Both texts are made first
(an interrupt while the page renders changes nothing), written to temporary files in the same
folder, and moved over the old pair with os.replace; the old pair is kept as hard links until
both moves are done, and put back if anything (a SIGINT included) stops between them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from harness.errors import InputError
from harness.judge.outcome import ClaimOutcome
from harness.report.outcomes import ItemResult, build_document
from harness.report.render import render_html


def json_path_for(html_path: Path) -> Path:
    return html_path.with_suffix(".json")


def check_report_path(html_path: Path, label: str = "") -> None:
    """Raise InputError unless the pair can be written there: a .html file name in a folder that can be made and written."""
    label = label or f"report path {str(html_path)!r}"
    for path in (html_path, json_path_for(html_path)):
        if path.is_dir():
            raise InputError(f"{label}: {str(path)!r} is a directory: give a file path such as {str(path / 'claims.html')!r}.")
    if html_path.suffix != ".html":
        raise InputError(
            f"{label} does not end in .html: the page is written there and its JSON twin beside it with the same name "
            f"ending in .json, so give e.g. {str(html_path.with_suffix('.html'))!r}."
        )
    missing = [p for p in [html_path.parent, *html_path.parent.parents] if not p.exists()]
    try:  # make the folder and a file in it, then take away exactly what was made
        html_path.parent.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=html_path.parent, prefix=f".{html_path.name}.", suffix=".probe")
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"{label} cannot be written ({exc.strerror or exc}): give a path in a folder you can write to.") from None
    finally:
        for folder in missing:
            try:
                folder.rmdir()
            except OSError:
                pass


def write_report(outcomes: Sequence[ClaimOutcome], run: dict, html_path: Path, session: dict | None = None) -> tuple[Path, Path]:
    """Report on outcome records directly (no pytest run): each counts as a test that passed."""
    items = [ItemResult(o.nodeid or f"outcome-{n}", outcome=o, pytest_outcome="passed") for n, o in enumerate(outcomes)]
    return write_document(build_document(items, run, session), html_path)


def write_document(doc: dict, html_path: Path) -> tuple[Path, Path]:
    """Write `doc` as the JSON twin and the HTML page, as a pair (see the module docstring)."""
    html_path = Path(html_path)
    json_path = json_path_for(html_path)
    texts = {json_path: json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False) + "\n", html_path: render_html(doc)}
    html_path.parent.mkdir(parents=True, exist_ok=True)
    temporary: dict[Path, str] = {}
    kept: dict[Path, str | None] = {}  # target -> hard link to its old content (None: it did not exist)
    try:
        for path, text in texts.items():
            temporary[path] = _temporary(path, text)
        for path in texts:
            kept[path] = _keep(path)
        done = []
        try:
            for path in texts:  # JSON, then HTML
                done.append(path)  # first: a target counts as touched from the moment its move may have begun
                os.replace(temporary[path], path)
                del temporary[path]
        except BaseException:
            for path in done:  # put the old pair back
                old = kept[path]
                if old is None:
                    path.unlink(missing_ok=True)
                else:
                    os.replace(old, path)  # a no-op where the move never began (same inode): `finally` drops the link
            raise
    finally:
        for name in [*temporary.values(), *(k for k in kept.values() if k)]:
            Path(name).unlink(missing_ok=True)
    return html_path, json_path


def _temporary(path: Path, text: str) -> str:
    """`text` in a new file beside `path`, flushed to disk, mode 644; its name."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return temporary


def _keep(path: Path) -> str | None:
    """A second name for `path`'s current content (a hard link, else a copy), or None when there is none."""
    if not path.exists():
        return None
    handle, backup = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old")
    os.close(handle)
    os.unlink(backup)
    try:
        os.link(path, backup)
    except OSError:  # a file system without hard links
        shutil.copy2(path, backup)
    return backup
