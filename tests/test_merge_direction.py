"""`report merge` compares what the runs measured: add's direction by its content (sha256), not by its path, and
the intervention before the factors (issue 25, rows 2 and 7).

Each test writes two claim reports' JSON twins made by the report's own code, runs `report merge`'s entry point
and asserts the exit code, the one line on stderr and what was (or was not) written.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from harness.report.merge import main as merge_main
from tests import test_hostile as hostile
from tests.test_hostile_report import _document, _one_line_exit

SHA_A = hashlib.sha256(b"vector a").hexdigest()
SHA_B = hashlib.sha256(b"vector b").hexdigest()


def _run(model: str, *, kind: str = "add", factors: list[float] | None = None, direction: str | None, sha: str | None) -> dict:
    """A report of `model` as a run under `kind` with --direction `direction` whose file had sha256 `sha`."""
    doc = _document(model)
    doc["run"]["settings"].update(intervention=kind, factors=factors or [-1.0, 1.0], direction=direction)
    doc["run"]["intervention"] = {
        "intervention": kind,
        "positions": "all",
        "component": "output",
        "direction": direction,
        "direction_sha256": sha,
    }
    doc["run"]["direction_sha256"] = sha
    return doc


def _merge(tmp_path: Path, a: dict, b: dict) -> int:
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    return merge_main(["merge", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "-o", str(tmp_path / "m.html")])


def test_two_vectors_at_one_path_are_refused_naming_the_file_and_both_sha256s(tmp_path, capsys):
    a, b = _run("a", direction="/data/v.pt", sha=SHA_A), _run("b", direction="/data/v.pt", sha=SHA_B)
    code = _merge(tmp_path, a, b)
    err = capsys.readouterr().err
    _one_line_exit(code, 2, err, f"were run with different direction (/data/v.pt (sha256 {SHA_A}) and /data/v.pt (sha256 {SHA_B}))")
    assert set(hostile._snapshot(tmp_path)) == {"a.json", "b.json"}  # nothing written


def test_one_vector_at_two_paths_merges_as_one_direction(tmp_path, capsys):
    code = _merge(tmp_path, _run("a", direction="/home/me/v.pt", sha=SHA_A), _run("b", direction="/scratch/job7/v.pt", sha=SHA_A))
    assert code == 0, capsys.readouterr().err
    merged = json.loads((tmp_path / "m.json").read_text())
    assert merged["run"]["intervention"]["direction_sha256"] == SHA_A and [m["model"] for m in merged["run"]["models"]] == ["a", "b"]


def test_a_run_with_a_direction_and_one_without_are_refused(tmp_path, capsys):
    code = _merge(tmp_path, _run("a", direction="/data/v.pt", sha=SHA_A), _run("b", direction=None, sha=None))
    _one_line_exit(code, 2, capsys.readouterr().err, f"different direction (/data/v.pt (sha256 {SHA_A}) and none)")


def test_an_older_record_without_a_sha256_is_compared_by_its_path(tmp_path, capsys):
    code = _merge(tmp_path, _run("a", direction="/data/v.pt", sha=None), _run("b", direction="/data/w.pt", sha=None))
    _one_line_exit(code, 2, capsys.readouterr().err, "different direction (/data/v.pt and /data/w.pt)")


def test_runs_of_different_kinds_are_refused_for_the_intervention_not_the_factors(tmp_path, capsys):
    """Row 7: a scale run and a noise run also differ in their factors (each kind's own strengths); the kind is named."""
    scale = _run("a", kind="scale", factors=[0.5, 1.5], direction=None, sha=None)
    noise = _run("b", kind="noise", factors=[0.5, 1.0], direction=None, sha=None)
    code = _merge(tmp_path, scale, noise)
    err = capsys.readouterr().err
    _one_line_exit(code, 2, err, "were run with different intervention ('scale' and 'noise')")
    assert "factors" not in err.split(":")[1]
