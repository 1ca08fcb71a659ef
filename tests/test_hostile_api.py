"""Careless and hostile input, round 2 (issue 19): the Python API, the CLI, the settings and the loader's names.

Each test asserts the message, the exit code (or the exception) and what is on disk afterwards. The
API's misuses run on minilm in-process and check the Δ they would have spoiled against the rule
it must keep (Δ = 0 before the scaled block and at factor 1); the suite's start-up errors run the
real claims suite in-process (tests.test_hostile's `suite`), with an earlier report pair on disk.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import torch
import transformers

from harness import CleanPass, InputError, Scale, cli, load_subject, profile
from harness.measure.capture import Capture
from harness.model.prompts import tokenize
from harness.settings import Settings, layers_of
from tests import test_hostile
from tests.test_hostile import NO_MODEL, _one_error, _one_line, _pytest, _snapshot

pytest_plugins = ["pytester"]
suite = test_hostile.suite  # the real claims suite in-process, with a clean environment

PROMPTS = ["The old lighthouse keeper climbed the stairs every evening.", "Rain fell on the quiet harbour town all night."]
BEFORE = ("embed", "block.0", "block.1")  # the sites before block 2, where Δ is 0 by construction


@pytest.fixture(scope="module")
def minilm():
    return load_subject("minilm", device="cpu")


def _hooks(subject) -> int:
    """Modules carrying a hook that transformers did not install (its output recorders stay after output_hidden_states)."""
    from harness.measure.guard import _foreign_hooks

    return sum(_foreign_hooks(m) for m in subject.model.modules())


def _sound(prof) -> None:
    """The rule a misuse breaks: Δ is exactly 0 before the scaled block and, everywhere, at factor 1."""
    assert prof.factors == (0.5, 1.0)
    assert not prof.delta[:, [prof.site(s) for s in BEFORE]].any() and not prof.delta[1].any()
    assert prof.delta[0, prof.site("block.2")] > 1.0


# ---------------------------------------------------------------------------------------------
# Row 6: train mode, threads, a foreign hook


def test_a_model_in_training_mode_is_refused_not_measured(minilm):
    """Row 6: refused (the caller's mode is left as set); what it prevents is dropout's Δ before the layer."""
    batch = tokenize(minilm, PROMPTS[:1]).padded([0], minilm.device)
    minilm.model.train()
    try:
        with pytest.raises(InputError) as refused:
            profile(minilm, PROMPTS, 2, [0.5, 1.0])
        assert str(refused.value) == (
            "minilm's model is in training mode (BertModel has training=True, as after subject.model.train()): dropout would "
            "make every forward differ and Δ would measure noise. Call subject.model.eval() before profiling."
        )
        assert minilm.model.training and _hooks(minilm) == 0  # left as the caller put it; no hook behind
        torch.manual_seed(0)
        with torch.no_grad(), Capture(minilm, sites=("block.1",)) as first:
            minilm.model(**batch)
        with torch.no_grad(), Capture(minilm, sites=("block.1",)) as second:
            minilm.model(**batch)
        noise = float((first.states["block.1"] - second.states["block.1"]).norm())
        assert noise > 1.0  # two clean passes in train mode already differ before any scaling (≈ 10 here)
    finally:
        minilm.model.eval()
    _sound(profile(minilm, PROMPTS, 2, [0.5, 1.0]))


def test_a_second_thread_profiling_the_same_subject_is_refused(minilm):
    """Row 6: while one profile runs, others of the same subject get one clear error; the one that runs is exact."""
    expected = profile(minilm, PROMPTS, 2, [0.5, 1.0]).delta
    started, others_done = threading.Event(), threading.Event()
    results: dict[str, object] = {}

    def hold(done: int, total: int) -> None:  # the first profile waits, mid-run, until the others have tried
        started.set()
        others_done.wait(60)

    def first() -> None:
        results["first"] = profile(minilm, PROMPTS, 2, [0.5, 1.0], progress=hold).delta

    def other(n: int) -> None:
        try:
            results[f"other {n}"] = profile(minilm, PROMPTS, 2, [0.5, 1.0]).delta
        except InputError as exc:
            results[f"other {n}"] = str(exc)

    runner = threading.Thread(target=first)
    runner.start()
    assert started.wait(60)
    others = [threading.Thread(target=other, args=(n,)) for n in range(3)]
    for thread in others:
        thread.start()
    for thread in others:
        thread.join(60)
    others_done.set()
    runner.join(60)
    refusals = {results[f"other {n}"] for n in range(3)}
    assert refusals == {
        "minilm is being profiled by another thread: one subject runs one profile at a time, since every profile hooks the "
        "same blocks and each would be scaled by the other's factors. Profile in turn, or load one subject per thread "
        "(load_subject again)."
    }
    np.testing.assert_array_equal(results["first"], expected)  # same shapes, same kernels: bit-identical to the lone run
    assert _hooks(minilm) == 0
    _sound(profile(minilm, PROMPTS, 2, [0.5, 1.0]))  # and the subject is free again


def test_profiling_inside_a_scale_block_is_refused(minilm):
    """Row 6: `with Scale(...)` around profile would scale its clean pass too; transformers' own output recorders are no foreign hook."""
    with torch.inference_mode():  # transformers 5 installs its recorders on the blocks here, for good (4.57: none)
        minilm.model(**tokenize(minilm, PROMPTS[:1]).padded([0], minilm.device), output_hidden_states=True)
    assert any(m._forward_hooks for m in minilm.blocks) == (int(transformers.__version__.split(".")[0]) >= 5)
    with Scale(minilm, 2, 0.5), pytest.raises(InputError) as refused:
        profile(minilm, PROMPTS, 2, [0.5, 1.0])
    assert str(refused.value).startswith(
        "minilm's model already has a forward hook on encoder.layer.2 (a `with Scale(...)` or `with Capture(...)` around "
        "this call, or another tool's hook): the clean pass would not be clean."
    )
    with Capture(minilm), pytest.raises(InputError, match=r"already has a forward hook on encoder\.layer\.0"):
        CleanPass(minilm, PROMPTS)
    assert _hooks(minilm) == 0
    _sound(profile(minilm, PROMPTS, 2, [0.5, 1.0]))


# ---------------------------------------------------------------------------------------------
# Rows 16 and 21: a subject changed after loading; a clean pass of another subject


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            torch.bfloat16,
            "minilm's weights are bfloat16 (embeddings.word_embeddings.weight) but the subject was loaded in float32: "
            "subject.model.to(...) changed them after loading, and the thresholds follow the loaded dtype. "
            "To measure in bfloat16, load it so: load_subject('minilm', dtype='bfloat16') (--dtype bfloat16).",
        ),
        (
            "meta",
            "minilm's weights are on the meta device (embeddings.word_embeddings.weight; subject.model.to('meta') was called?): "
            "they hold no values. Load the subject again: load_subject('minilm', device=..., dtype=...).",
        ),
    ],
    ids=["bfloat16", "meta"],
)
def test_weights_cast_or_moved_after_loading_are_named(change, message):
    """Row 16: one InputError before any forward, saying what happened and how to load in another dtype."""
    subject = load_subject("minilm", device="cpu")
    subject.model.to(change)
    with pytest.raises(InputError) as refused:
        profile(subject, PROMPTS, 2, [0.5, 1.0])
    assert str(refused.value) == message
    with pytest.raises(InputError, match="minilm's weights are"):
        CleanPass(subject, PROMPTS)


def test_a_clean_pass_of_another_subject_names_what_differs(minilm):
    """Row 21: not "made on minilm, not on minilm": another load, or the setting that differs."""
    clean = CleanPass(minilm, PROMPTS)
    again = load_subject("minilm", device="cpu")
    with pytest.raises(InputError) as refused:
        profile(again, None, 2, [0.5], clean=clean)
    assert str(refused.value) == (
        "the clean pass was made on another load of minilm (the same revision, dtype and device, but a separate copy of the "
        "model): a clean pass is measured with the very subject it was made on. Pass that subject (clean.subject), or make a "
        "new CleanPass(subject, prompts) for this one."
    )
    half = load_subject("minilm", device="cpu", dtype="bfloat16")
    with pytest.raises(InputError, match=r"made on a different subject \(dtype float32, where this one has bfloat16\)"):
        profile(half, None, 2, [0.5], clean=clean)
    _sound(profile(minilm, None, 2, [0.5, 1.0], clean=clean))


# ---------------------------------------------------------------------------------------------
# Rows 7, 15, 19: the CLI


def test_the_cli_warns_once_about_invisible_lines_and_measures_the_rest(tmp_path, minilm, monkeypatch, capsys):
    """Row 7: a form feed or U+2028 inside a line is one prompt; zero-width-space and BOM lines are blank, counted."""
    path = tmp_path / "p.txt"
    path.write_bytes(f"{PROMPTS[0]}\f{PROMPTS[1]}\n\u200b\n\ufeff\n{PROMPTS[1]}\u2028{PROMPTS[0]}\r\n".encode())
    before = _snapshot(tmp_path)
    monkeypatch.setattr(cli, "load_subject_for", lambda s: minilm)
    assert cli.main(["profile", "--model", "minilm", "--prompts", str(path), "--factor", "0.5", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["n_prompts"] == 2 and len(json.loads(out)["prompt_lengths"]) == 2
    assert err == (
        "warning: 2 lines hold only invisible characters (zero-width space, byte-order mark, other format characters) "
        f"in prompts file {str(path)!r}: skipped as blank, 2 prompts read.\n"
    )
    assert _snapshot(tmp_path) == before


def test_a_seed_beyond_torchs_range_is_refused_when_parsed(capsys, monkeypatch):
    """Row 15: 2**64 is named with the range before random-gpt2 is built; 2**64 − 1 is the largest allowed."""
    monkeypatch.setattr(cli, "load_subject_for", lambda s: pytest.fail("loaded a subject"))
    assert cli.main(["profile", "--model", "random-gpt2", "--seed", "18446744073709551616", "--prompt", "Hi there"]) == 2
    assert capsys.readouterr().err == (
        "error: --seed '18446744073709551616' is above 18446744073709551615: give an integer from 0 to "
        "18446744073709551615 (2**64 − 1, torch's seed range).\n"
    )
    assert Settings.from_text({"seed": ("18446744073709551615", "--seed")}).seed == 2**64 - 1
    with pytest.raises(InputError, match=r"^seed=18446744073709551616 is above 18446744073709551615"):
        load_subject("random-gpt2", seed=2**64)


@pytest.fixture(scope="module")
def random_gpt2():
    return load_subject("random-gpt2", device="cpu")


def test_an_nll_with_no_next_token_is_n_a_with_its_reason(random_gpt2, monkeypatch, capsys):
    """Row 19: two-token prompts on a tokenizer without BOS leave no next token: n/a and why, never nan."""
    monkeypatch.setattr(cli, "load_subject_for", lambda s: random_gpt2)
    argv = ["profile", "--model", "random-gpt2", "--prompt", "Hi there", "--factor", "0.5"]
    assert tokenize(random_gpt2, ["Hi there"]).lengths == (2,) and random_gpt2.first.start is None
    reason = (
        "no position has a next token to score: over every token but the first, a prompt of T tokens scores T − 2 next "
        "tokens, and the longest prompt here is 2 tokens (first token: the prompt's first token (the tokenizer adds no BOS)); "
        "give prompts of 3 tokens or more, or --include-first-token"
    )
    assert cli.main(argv) == 0
    out, _ = capsys.readouterr()
    assert "nan" not in out and out.splitlines()[-2].split("|")[-1].strip() == "n/a" and out.splitlines()[-1] == f"nll n/a: {reason}"
    assert cli.main([*argv, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["nll_change"] == [None] and doc["predictions_not_measured"] == {"nll_change": reason} and doc["kl"][0] > 0
    assert cli.main([*argv, "--json", "--include-first-token"]) == 0  # the first token counted: one next token to score
    doc = json.loads(capsys.readouterr().out)
    assert isinstance(doc["nll_change"][0], float) and "predictions_not_measured" not in doc


# ---------------------------------------------------------------------------------------------
# Rows 9, 18, 22: the suite's start-up, an earlier report kept


@pytest.fixture
def earlier_report(tmp_path):
    html = tmp_path / "out" / "claims.html"
    html.parent.mkdir()
    html.write_text("earlier page")
    html.with_suffix(".json").write_text('{"earlier": true}')
    return html, _snapshot(html.parent)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--model", "minilm"], {"HARNESS_LAYERS": "0-99999999999999999999"}, "HARNESS_LAYERS='0-99999999999999999999' names block "),
        ([], {"HARNESS_MODEL": "minilm,"}, "HARNESS_MODEL='minilm,' has an empty entry (entry 2 of 2): give model names"),
        ([], {"HARNESS_MODEL": "minilm,,random-gpt2"}, "HARNESS_MODEL='minilm,,random-gpt2' has an empty entry (entry 2 of 3)"),
        (
            NO_MODEL,
            {"HARNESS_PROMPTS": ""},
            "HARNESS_PROMPTS is set but empty: set it to a value (text file, one prompt per line ('#' lines are comments); "
            "pytest reads the note's corpus (harness/note/prompts.txt) without it), or unset it (unset HARNESS_PROMPTS) for its default.",
        ),
        (NO_MODEL, {"HARNESS_LAYER": " "}, "HARNESS_LAYER is set but empty: set it to a value (block intervened on"),
        (
            NO_MODEL,
            {"HARNESS_EXPECTATIONS": ""},
            "HARNESS_EXPECTATIONS is set but empty: set it to the path of an expectations TOML file, or unset it "
            "(unset HARNESS_EXPECTATIONS) to use ",
        ),
        ([*NO_MODEL, "--prompts", ""], {}, "--prompts '' is empty: give a text file with one prompt per line."),
        ([*NO_MODEL, "--expectations", ""], {}, "--expectations '' is empty: give the path of an expectations TOML file, or leave it out"),
    ],
    ids=[
        "layers-huge",
        "model-trailing-comma",
        "model-double-comma",
        "prompts-empty",
        "layer-blank",
        "expectations-empty",
        "prompts-flag-empty",
        "expectations-flag-empty",
    ],
)
def test_odd_values_of_the_variables_are_named_as_they_are(suite, earlier_report, args, env, message):
    """Rows 9 and 18: one line naming the whole value, exit 4, in well under a second of work; the earlier report kept."""
    html, before = earlier_report
    start = time.monotonic()
    result = suite(*args, "--report", str(html), env=env)
    assert time.monotonic() - start < 60  # row 9 built 10**20 layers before checking: OOM after minutes
    _one_line(result, 4, message)
    assert "'' is a directory" not in result.stderr.str() and "'.' is a directory" not in result.stderr.str()
    assert _snapshot(html.parent) == before


def test_a_layer_list_beyond_the_model_stops_the_suite_at_once(tmp_path):
    """Row 9 on a real run: a range within int64 but past minilm's 6 blocks is one line, exit 4, no report written."""
    report = tmp_path / "r.html"
    run = _pytest("claims/", "--model", "minilm", "--layers", "0-999999999999999999", "--report", str(report))
    _one_error(run, 4, "cannot run the claims: --layers '0-999999999999999999' names block 6, beyond the model's 6 blocks")
    assert not report.exists() or "before running any test" in report.read_text()


def test_a_layer_list_is_checked_before_it_is_built():
    """Row 9: bounds from each part's ends, so no range is listed past the model's blocks, however long the text."""
    with pytest.raises(InputError, match=r"^--layers '0-99999999999999999' names block 6, beyond the model's 6 blocks"):
        layers_of("0-99999999999999999", 6)
    spec = Settings.from_text({"layers": (",".join(["0-5"] * 20000 + ["2"]), "--layers")}).layers
    assert layers_of(spec, 6) == [0, 1, 2, 3, 4, 5]
    with pytest.raises(InputError) as huge:
        Settings.from_text({"layers": ("0-" + "9" * 5000, "HARNESS_LAYERS")})
    text = str(huge.value)
    assert len(text) < 600 and "(5002 characters)" in text and "larger than any model's block count" in text


def test_one_model_spelled_two_ways_is_refused(suite, earlier_report, tmp_path):
    """Row 22: 'DIR' and 'DIR/' (and './DIR', a Hub id in other case) are one model, not two columns."""
    from harness.model.loading import model_identity

    html, before = earlier_report
    model = tmp_path / "llama"
    model.mkdir()
    result = suite("--model", str(model), "--model", f"{model}/", "--report", str(html))
    _one_line(result, 4, f"--model names one model twice, as {str(model)!r} and {str(model) + '/'!r} (both {model}): give each model once.")
    assert _snapshot(html.parent) == before
    result = suite("--report", str(html), env={"HARNESS_MODEL": f"{model},{tmp_path}/./llama"})
    _one_line(result, 4, f"HARNESS_MODEL names one model twice, as {str(model)!r} and '{tmp_path}/./llama'")
    assert model_identity("GPT2") == model_identity("gpt2") != model_identity("gpt2-medium")
    assert model_identity("minilm") == "minilm" != model_identity("random-gpt2")
