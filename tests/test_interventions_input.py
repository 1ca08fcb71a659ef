"""The interventions' options: bad input in one line (CLI exit 2, pytest exit 4, nothing lost), hook hygiene, the record.

The CLI runs in-process on minilm (loaded once per call, small); the pytest rows run `pytest claims/`
in a subprocess as a user would, with a report from an earlier run on disk that must survive.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from harness import cli, load_subject
from harness.errors import InputError
from harness.intervene.edits import CLASSES, build
from harness.intervene.kinds import KINDS, InterventionSpec
from harness.settings import Settings
from tests.test_hostile import _one_error, _pytest

PROMPT = ["--prompt", "The cat sat on the mat and looked at the dog."]


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["profile", "--model", "minilm", "--device", "cpu", *PROMPT, *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def vectors(tmp_path):
    def save(name: str, value: np.ndarray):
        path = tmp_path / name
        np.save(path, value) if name.endswith(".npy") else torch.save(torch.as_tensor(value), path)
        return path

    return save


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--intervention", "noise", "--factor", "1.5"], "strength 1.5 is outside noise's range [0, 1]"),
        (["--intervention", "scale-update", "--factor", "-0.1"], "strength -0.1 is outside scale-update's range [0, 1.5]"),
        (["--intervention", "mean-ablate", "--factor", "2"], "strength 2 is outside mean-ablate's range [0, 1]"),
        (["--component", "head"], "--component 'head' is not supported: choose one of output, attention, mlp"),
        (["--positions", "last"], "--positions 'last' is not supported: choose one of all, first, rest"),
        (["--intervention", "zero"], "--intervention 'zero' is not supported: choose one of scale, scale-update, noise, add, mean-ablate"),
        (["--intervention", "add"], "--intervention add needs --direction FILE"),
        (["--intervention", "scale-update", "--component", "mlp"], "use --intervention scale with that component"),
        (["--direction", "/nonexistent/v.npy", "--intervention", "add"], "--direction '/nonexistent/v.npy' does not exist"),
        (["--direction", "v.txt", "--intervention", "add"], "--direction 'v.txt' is not a .npy or .pt file"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(capsys, args, message):
    code, out, err = _cli(capsys, *args)
    assert code == 2 and out == "" and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("short.npy", np.ones(5), "has shape (5,): give a 1-D vector of the model's width, shape (384,)"),
        ("matrix.pt", np.ones((2, 384)), "has shape (2, 384)"),
        ("nan.npy", np.full(384, np.nan), "holds non-finite values (NaN or inf)"),
        ("inf.pt", np.r_[np.ones(383), np.inf], "holds non-finite values"),
    ],
)
def test_a_bad_direction_is_one_line_and_exit_2(capsys, vectors, name, value, message):
    path = vectors(name, value)
    code, out, err = _cli(capsys, "--intervention", "add", "--direction", str(path))
    assert code == 2 and out == "" and message in err and str(path) in err, err
    assert err.count("\n") == 1


def test_direction_without_add_is_refused(capsys, vectors):
    path = vectors("v.npy", np.ones(384))
    code, _, err = _cli(capsys, "--direction", str(path))
    assert code == 2 and "is given but --intervention is 'scale': only add reads a direction" in err


def test_a_corrupt_direction_file_is_one_line(capsys, tmp_path):
    path = tmp_path / "v.pt"
    path.write_bytes(b"not a tensor")
    code, _, err = _cli(capsys, "--intervention", "add", "--direction", str(path))
    assert code == 2 and "is not a readable .pt array" in err and err.count("\n") == 1


def test_the_json_names_the_intervention_and_the_direction(capsys, vectors):
    path = vectors("v.npy", np.linspace(-1, 1, 384))
    code, out, _ = _cli(capsys, "--intervention", "add", "--direction", str(path), "--positions", "rest", "--component", "mlp", "--json")
    data = json.loads(out)
    assert code == 0 and data["factors"] == [-1.0, 1.0]  # add's own strengths without --factor
    assert (data["intervention"], data["positions"], data["component"]) == ("add", "rest", "mlp")
    assert data["direction_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert data["settings"]["direction"] == str(path) and data["settings"]["intervention"] == "add"


def test_positions_first_without_the_first_token_is_a_note_not_an_error(capsys):
    code, out, err = _cli(capsys, "--positions", "first", "--factor", "0.5")
    assert code == 0 and "intervention scale (positions first)" in out
    assert err.startswith("note: --positions first edits only each prompt's first token") and "0 by construction" in err
    rows = {line.split("|")[0].strip(): line for line in out.splitlines() if "|" in line}
    assert float(rows["block.2"].split("|")[1].split()[0]) == 0.0
    code, out, err = _cli(capsys, "--positions", "first", "--factor", "0.5", "--include-first-token")
    assert code == 0 and "note: --positions" not in err


def test_settings_fill_in_the_kinds_strengths():
    assert Settings().validated().factors == (0.5, 1.5)
    for kind in KINDS.values():
        direction = {"direction": __file__.replace(".py", ".npy")} if kind.name == "add" else {}
        settings = Settings(intervention=kind.name, **direction)
        if kind.name == "add":  # the parser checks the file: refused before any model, naming it
            with pytest.raises(InputError, match="does not exist"):
                settings.validated()
            continue
        assert settings.validated().factors == kind.defaults
        assert all(kind.allowed[0] <= s <= kind.allowed[1] for s in (*kind.defaults, *kind.drawn))


@pytest.fixture(scope="module")
def minilm():
    return load_subject("minilm", device="cpu")


def _hooks(subject) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in subject.model.modules())


@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_no_hook_survives_an_error_or_a_half_finished_registration(minilm, kind, monkeypatch):
    params = {"direction": torch.ones(384)} if kind == "add" else {"mean": torch.zeros(384)} if kind == "mean-ablate" else {}
    spec = InterventionSpec(kind, positions="rest", component="output", direction=None)
    edit = build(minilm, spec, 2, KINDS[kind].drawn[1], **params)
    batch = {k: torch.tensor([v]) for k, v in minilm.encode("Hello there, world.").items()}
    before = _hooks(minilm)
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):

        def explode(module, args, output, exc=exc):
            raise exc

        handle = minilm.blocks[3].register_forward_hook(explode)
        try:
            with pytest.raises(type(exc)), edit:
                assert _hooks(minilm) > before + 1  # the mask reader (positions rest) and the edit, at least
                minilm.model(**batch)
        finally:
            handle.remove()
        assert _hooks(minilm) == before
    # the edit's own hook fails to register after the others did: they are removed again
    monkeypatch.setattr(edit.module, "register_forward_hook", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no hooks here")))
    with pytest.raises(RuntimeError, match="no hooks here"), edit:
        pass
    assert _hooks(minilm) == before and not edit._handles


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--component", "head"], "--component 'head' is not supported"),
        (["--intervention", "add"], "--intervention add needs --direction FILE"),
        (["--direction", "missing.npy", "--intervention", "add"], "--direction 'missing.npy' does not exist"),
        (["--intervention", "noise", "--direction", "x.npy"], "does not exist"),
    ],
)
def test_pytest_refuses_bad_intervention_options_at_start_up(tmp_path, args, message):
    report = tmp_path / "earlier.html"
    report.write_text("an earlier report")
    run = _pytest("claims/", "--model", "minilm", "--report", str(report), *args)
    _one_error(run, 4, message)
    assert report.read_text() == "an earlier report"


def test_pytest_refuses_a_direction_of_the_wrong_width_when_the_model_loads(tmp_path):
    path = tmp_path / "v.npy"
    np.save(path, np.ones(7))
    run = _pytest("claims/", "--model", "minilm", "--no-report", "--intervention", "add", "--direction", str(path))
    _one_error(run, 4, "has shape (7,): give a 1-D vector of the model's width, shape (384,)")
