"""Careless and hostile input (issue 12, issue 8 item 3): one clear line, the right exit code, nothing lost.

Each test asserts the message, the exit code, and that the files on disk (report, twin,
expectations) are as they were, or complete and new. The report's edge cases run on a fake claims
suite (pytester, in-process, no model); the suite's own rows run `pytest claims/` on minilm in a
subprocess, as a user would; the CLI runs in-process with a cached subject.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import cli
from harness.note import CLAIMS
from harness.report import write
from tests.test_report_pytester import fake_suite

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = "The old lighthouse keeper climbed the stairs every evening.\nRain fell on the quiet harbour town all night.\n"

pytest_plugins = ["pytester"]


def _pytest(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """`python -m pytest ARGS` as a user types it, offline, one thread, this worktree's harness."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "HYPOTHESIS_"))}
    base.update({"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **(env or {})})
    cmd = [sys.executable, "-m", "pytest", *args, "-q", "-p", "no:cacheprovider"]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, env=base)


def _one_error(run: subprocess.CompletedProcess, code: int, message: str) -> None:
    text = run.stdout + run.stderr
    assert run.returncode == code, text[-3000:]
    assert message in text, text[-3000:]
    assert "Traceback (most recent call last)" not in text and "INTERNALERROR" not in text, text[-3000:]


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mode) for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------
# The report: refused paths, runs that measure nothing, the pair after an interrupt


@pytest.fixture
def earlier(pytester) -> dict:
    """A fake claims suite with a report from an earlier run on disk; returns that pair's bytes."""
    fake_suite(pytester)
    pytester.runpytest("claims", "-p", "no:cacheprovider")
    return _snapshot(pytester.path / "reports")


@pytest.mark.parametrize(
    ("report", "message"),
    [
        ("out.json", "--report 'out.json' does not end in .html"),
        ("reports/claims.json", "does not end in .html"),
        ("reports", "--report 'reports': "),  # an existing directory
        ("/proc/nope/r.html", "--report '/proc/nope/r.html' cannot be written"),
    ],
)
def test_a_report_path_that_cannot_hold_the_pair_is_refused_at_start_up(pytester, earlier, report, message):
    result = pytester.runpytest("claims", "--report", report, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str() and "passed" not in result.stdout.str()
    assert _snapshot(pytester.path / "reports") == earlier
    assert not (pytester.path / "out.json").exists()


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["claims/test_fake.py::test_nope"], pytest.ExitCode.USAGE_ERROR),
        (["claims", "-k", "nomatch"], pytest.ExitCode.NO_TESTS_COLLECTED),
        (["claims", "--co"], pytest.ExitCode.OK),
    ],
    ids=["no-such-test", "k-nomatch", "collect-only"],
)
def test_a_run_that_measures_nothing_keeps_the_previous_report(pytester, earlier, args, code):
    result = pytester.runpytest(*args, "-p", "no:cacheprovider")
    assert result.ret == code
    assert _snapshot(pytester.path / "reports") == earlier


def _old_pair(tmp_path: Path) -> tuple[Path, dict]:
    html = tmp_path / "claims.html"
    html.write_text("old page")
    html.with_suffix(".json").write_text('{"old": true}')
    return html, _snapshot(tmp_path)


def test_an_interrupt_while_the_page_renders_keeps_the_old_pair(tmp_path, monkeypatch):
    html, before = _old_pair(tmp_path)

    def interrupted(doc):
        raise KeyboardInterrupt

    monkeypatch.setattr(write, "render_html", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write.write_document({"claims": []}, html)
    assert _snapshot(tmp_path) == before  # no temporary left either


def test_an_interrupt_between_the_two_moves_puts_the_old_pair_back(tmp_path, monkeypatch):
    html, before = _old_pair(tmp_path)
    real = os.replace
    moves = []

    def second_move_interrupted(src, dst):
        moves.append(dst)
        if len(moves) == 2:
            raise KeyboardInterrupt
        real(src, dst)

    monkeypatch.setattr(write.os, "replace", second_move_interrupted)
    monkeypatch.setattr(write, "render_html", lambda doc: "new page")
    with pytest.raises(KeyboardInterrupt):
        write.write_document({"claims": []}, html)
    monkeypatch.setattr(write.os, "replace", real)
    assert _snapshot(tmp_path) == before
    write.write_document({"claims": []}, html)  # and a pair that completes is complete and new
    assert html.read_text() == "new page" and json.loads(html.with_suffix(".json").read_text()) == {"claims": []}


# ---------------------------------------------------------------------------------------------
# The suite's options, checked before any model loads (a model path that does not exist proves it).
# In-process: nothing here loads a model, so a subprocess would only add seconds of imports.

NO_MODEL = ["--model", "/no/such/model-dir"]


@pytest.fixture
def suite(pytester, monkeypatch):
    """run(*args, env={}) -> RunResult: the real claims suite in-process, with a clean environment."""
    for name in list(os.environ):
        if name.startswith(("HARNESS_", "HYPOTHESIS_")):
            monkeypatch.delenv(name)

    def run(*args: str, env: dict[str, str] | None = None) -> pytest.RunResult:
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        return pytester.runpytest_inprocess(str(ROOT / "claims"), "--rootdir", str(ROOT), "-p", "no:cacheprovider", *args)

    return run


def _one_line(result: pytest.RunResult, code: int, message: str) -> None:
    text = result.stdout.str() + result.stderr.str()
    assert result.ret == code, text[-3000:]
    assert message in text, text[-3000:]
    assert "Traceback (most recent call last)" not in text and "INTERNALERROR" not in text, text[-3000:]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--help"], "--memory-budget-mb"),
        (["--markers"], "@pytest.mark.claim(id, applies=None)"),
        (["--fixtures"], "claim_check"),
        (["--co"], f"{3 * len(CLAIMS)} tests collected"),  # 2 note factors + 1 property test per claim
    ],
    ids=["help", "markers", "fixtures", "collect-only"],
)
def test_describing_the_suite_loads_no_model(suite, args, message):
    _one_line(suite(*args, *NO_MODEL, "--no-report"), 0, message)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["--hypothesis-profile", "bogus"],
            {},
            "--hypothesis-profile 'bogus' is not a Hypothesis profile: choose one of ci, dev, thorough",
        ),
        ([], {"HYPOTHESIS_PROFILE": "bogus"}, "HYPOTHESIS_PROFILE='bogus' is not a Hypothesis profile: choose one of ci, dev, thorough"),
        ([], {"HARNESS_LAYER": "abc"}, "HARNESS_LAYER='abc' is not an integer"),
        (["--layer", "abc"], {}, "--layer 'abc' is not an integer"),
        (["--factor-batch", "abc"], {}, "--factor-batch 'abc' is not an integer: give a positive count of factors"),
        (["--seed", "-1"], {}, "--seed '-1' is below 0"),
        (["--memory-budget-mb", "many"], {}, "--memory-budget-mb 'many' is not an integer"),
        (["--device", "cuda:x"], {}, "--device 'cuda:x' is not supported"),
        (["--expectations", str(ROOT / "claims")], {}, f"--expectations {str(ROOT / 'claims')!r} is a directory"),
        (["--expectations", "/no/dir/e.toml", "--update-expectations"], {}, "its folder '/no/dir' does not exist"),
        (["--prompts", str(ROOT / "claims")], {}, f"--prompts {str(ROOT / 'claims')!r} is a directory"),
    ],
)
def test_a_bad_option_stops_the_suite_with_one_message(suite, args, env, message, tmp_path):
    report = tmp_path / "r.html"
    _one_line(suite(*NO_MODEL, *args, "--report", str(report), env=env), 4, message)
    assert not report.exists() or "before running any test" in report.read_text()


def test_an_expectations_file_of_the_wrong_shape_names_the_key(suite, tmp_path):
    path = tmp_path / "e.toml"
    path.write_text('minilm = "holds"\n')
    _one_line(suite(*NO_MODEL, "--expectations", str(path), "--no-report"), 4, "minilm = 'holds' is not a section")
    assert path.read_text() == 'minilm = "holds"\n'


def test_a_model_directory_with_an_empty_config_is_one_line(suite, tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("")
    result = suite("--model", str(tmp_path / "model"), "--no-report")
    _one_line(result, 4, "cannot run the claims")
    assert str(tmp_path / "model") in result.stderr.str()


# ---------------------------------------------------------------------------------------------
# The suite on minilm: the last block, a layer's own expectations, an interrupted update


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.txt"
    path.write_text(PROMPTS)
    return path


def _expectations_copy(tmp_path: Path) -> Path:
    path = tmp_path / "expectations.toml"
    path.write_text((ROOT / "harness" / "note" / "expectations.toml").read_text() + "# a comment of mine, at the end\n")
    os.chmod(path, 0o640)
    return path


@pytest.mark.slow
def test_the_last_block_makes_c3_and_c4_not_applicable_and_updates_its_own_section(tmp_path, corpus):
    expectations = _expectations_copy(tmp_path)
    before = tomllib.loads(expectations.read_text())
    report = tmp_path / "out" / "claims.html"
    run = _pytest(
        "claims/test_c3_growth.py", "claims/test_c4_final_drop.py", "--model", "minilm", "--layer", "5",
        "--prompts", str(corpus), "--expectations", str(expectations), "--update-expectations",
        "--report", str(report), "--hypothesis-profile", "ci",
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:]
    assert "cannot travel as JSON" not in run.stdout and "6 skipped" in run.stdout
    doc = json.loads(report.with_suffix(".json").read_text())
    c4 = next(c for c in doc["claims"] if c["claim"] == "C4")
    assert c4["status"] == "not applicable" and "comes before the scaled block 5" in c4["items"][0]["reason"]
    text = expectations.read_text()
    after = tomllib.loads(text)
    assert after["minilm"] == {**before["minilm"], "layer-5": after["minilm"]["layer-5"]}  # the note's layer untouched
    assert {c: e["verdict"] for c, e in after["minilm"]["layer-5"].items()} == {"C3": "not-applicable", "C4": "not-applicable"}
    assert "comes before the scaled block 5" in after["minilm"]["layer-5"]["C4"]["reason"]
    assert "# a comment of mine, at the end" in text and "# Expected verdict of each claim" in text
    assert stat.S_IMODE(expectations.stat().st_mode) == 0o640
    assert {k: v for k, v in after.items() if k != "minilm"} == {k: v for k, v in before.items() if k != "minilm"}


INTERRUPTER = """
import pytest

def pytest_runtest_call(item):
    if item.name.startswith("test_C1_no_change_before_layer_drawn"):
        raise KeyboardInterrupt
"""


@pytest.mark.slow
def test_an_interrupted_update_writes_nothing_and_says_so(tmp_path, corpus):
    expectations = _expectations_copy(tmp_path)
    (tmp_path / "interrupter.py").write_text(INTERRUPTER)
    before = _snapshot(tmp_path)
    run = _pytest(
        "claims/test_c1_no_change_before.py", "claims/test_c2_jump_at_layer.py", "--model", "minilm", "--prompts", str(corpus),
        "--expectations", str(expectations), "--update-expectations", "--no-report", "-p", "interrupter",
        env={"PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"},
    )  # fmt: skip
    assert run.returncode == pytest.ExitCode.INTERRUPTED, run.stdout[-3000:]
    assert "expectations NOT updated" in run.stdout and "interrupted" in run.stdout
    assert _snapshot(tmp_path) == before


# ---------------------------------------------------------------------------------------------
# The CLI: fuzzed prompts files and option values


@pytest.fixture(scope="module")
def minilm():
    from harness.model import load_subject

    return load_subject("minilm", device="cpu")


def test_the_cli_refuses_a_directory_of_prompts_in_one_line(tmp_path, capsys):
    assert cli.main(["profile", "--model", "minilm", "--prompts", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and f"--prompts {str(tmp_path)!r} is a directory" in err


OPTION_VALUES = {
    "--layer": st.sampled_from(["abc", "-1", "2.0", "99", "1e3", "", "٣"]),
    "--factor": st.sampled_from(["-inf", "nan", "inf", "1e400", "abc", "", "0x10"]),
    "--factor-batch": st.sampled_from(["abc", "0", "-3", "1.5", ""]),
    "--dtype": st.sampled_from(["int4", "", "Float32", "float64"]),
    "--device": st.sampled_from(["gpu", "", "cuda:x", "cuda:-1", "cuda: 0", "cuda:1.5"]),
    "--memory-budget-mb": st.sampled_from(["0", "abc", "-5", "1e9"]),
    "--prepend-bos": st.sampled_from(["maybe", "", "YES"]),
}


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    content=st.one_of(
        st.binary(max_size=40),
        st.sampled_from([b"", b"\n\n", b"# only a comment\n", b"\xff\xfe\x00", "\ufeff# c\nA cat sat down.\n".encode(), b"x\n"]),
        st.sampled_from(["A cat\u2028sat\fdown\x85here.\r\n\u200b\n\ufeff\n".encode(), "\u2029\u200b\n\x0b\n".encode()]),
    ),
    flag=st.sampled_from(sorted(OPTION_VALUES)),
    data=st.data(),
)
def test_fuzzed_input_is_one_line_and_exit_2_or_a_table(content, flag, data, tmp_path_factory, minilm, monkeypatch, capsys):
    folder = tmp_path_factory.mktemp("fuzz")
    prompts = folder / "prompts.txt"
    prompts.write_bytes(content)
    before = _snapshot(folder)
    monkeypatch.setattr(cli, "load_subject_for", lambda s: minilm)  # the options are what is fuzzed, not the loader
    value = data.draw(OPTION_VALUES[flag]) if data.draw(st.booleans()) else None
    argv = ["profile", "--model", "minilm", "--prompts", str(prompts), *([flag, value] if value is not None else [])]
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    if code == 0:  # a valid corpus and no bad value: the table
        assert out.splitlines()[2].startswith("site"), (argv, out)
    else:
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, (argv, err)
        if value is not None and not err.startswith("error: prompt"):
            assert flag in err or "prompts" in err or "layer" in err, (argv, err)
    assert _snapshot(folder) == before


def test_long_sweeps_print_progress_lines_on_pytests_terminal():
    """Row 15: a claims run on a long corpus says how far each sweep is; short sweeps print nothing."""
    from types import SimpleNamespace

    from harness.suite.plugin import progress_lines

    lines: list[str] = []
    reporter = SimpleNamespace(write_line=lines.append)
    config = SimpleNamespace(pluginmanager=SimpleNamespace(get_plugin=lambda name: reporter if name == "terminalreporter" else None))
    quick = progress_lines(config, "clean pass of minilm")  # default: quiet for the first 5 s
    for done in range(1, 41):
        quick(done, 40)
    assert lines == []
    slow = progress_lines(config, "clean pass of minilm", after_s=0.0)
    for done in range(1, 41):
        slow(done, 40)
    assert lines[0].startswith("harness: clean pass of minilm: 1/40 chunks in ") and lines[-1].startswith(
        "harness: clean pass of minilm: 40/40"
    )
    assert len(lines) == 11  # once per tenth, and at the end
    assert progress_lines(SimpleNamespace(pluginmanager=SimpleNamespace(get_plugin=lambda name: None)), "x") is None
