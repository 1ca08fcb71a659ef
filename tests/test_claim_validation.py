"""A Claim's id and fields are checked when the Claim is made and at collection (issue 25, rows 3 and 4).

Row 3, ids: an id the expectations file cannot key (`"my claim/1"`), an id that names a sub-section of it (`noise`,
`layer-4`), one id made twice (in two files, or twice in one file: both places named), and a claim made in a
module that collects no test. Row 4, the claim API's fields: thresholds that are not Threshold records (a bare
float, a list), a Threshold without a reason, the per-dtype form (`Threshold({"float32": 0.1}, ...)`, read at the
run's dtype), reversed `within` bounds, a statistic_of that returns an array, a constant or text, or is text, and
a statistic inf on every prompt. Each is one line naming the claim, the field and what it takes: a ClaimError when
made in Python, exit 4 at collection (never an INTERNALERROR, exit 3, or a traceback).

The collection rows run `pytest FOLDER` in a subprocess from a folder outside the repo, as tests/test_own_claim.py
does; nothing loads a model before these refusals.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.judge import claim as claim_module
from harness.judge.claim import Claim, ClaimError, Threshold, View
from harness.measure.record import Profile
from tests.test_own_claim import _run, folder  # noqa: F401 (the fixture)

pytest_plugins = ["pytester"]

HEAD = """
import numpy as np
from harness import Claim, Threshold, claim_tests

def ratio(v):
    return v.delta[..., -1] / v.delta[..., v.site(f"block.{v.layer}")]

T = {"T": Threshold(0.1, "why")}
"""


def _claim(cid: str = "c", *, line: str = "", **fields: str) -> str:
    """A test module's text making one claim with `fields` (Python source) and its tests."""
    args = ", ".join(f"{k}={v}" for k, v in {"statistic_of": "ratio", "thresholds": "T", **fields}.items())
    return HEAD + f'{line}C = Claim({cid!r}, "t", "s", {args})\ntest_a, test_b = claim_tests(C)\n'


@pytest.fixture
def registry():
    """The claim registry as it was: claims made here must not reach another test's in-process suite run."""
    saved = dict(claim_module.CLAIMS), {k: list(v) for k, v in claim_module.TWICE.items()}, list(claim_module.REFUSED)
    yield
    claim_module.CLAIMS.clear(), claim_module.CLAIMS.update(saved[0])
    claim_module.TWICE.clear(), claim_module.TWICE.update(saved[1])
    claim_module.REFUSED[:] = saved[2]


def _collect(pytester, folder, files: dict[str, str]) -> tuple[int, str]:  # noqa: F811
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    result = _run(pytester, "my_claims", "--model", "minilm", "--no-report")
    text = result.stdout.str() + "\n" + result.stderr.str()
    assert "Traceback (most recent call last)" not in text and "INTERNALERROR" not in text, text[-3000:]
    return result.ret, text


# ---------------------------------------------------------------------------------------------
# Row 3: ids


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"test_space.py": _claim("my claim/1")}, "claim id 'my claim/1' ("),
        ({"test_kind.py": _claim("noise")}, "claim id 'noise' ("),
        ({"test_layer.py": _claim("layer-4")}, "claim id 'layer-4' ("),
        ({"test_one.py": _claim("twice"), "test_two.py": _claim("twice")}, "claim id 'twice' is defined twice, in "),
        ({"test_same.py": _claim("twice") + _claim("twice").replace(HEAD, "")}, "claim id 'twice' is defined twice, in "),
        ({"test_idle.py": HEAD + 'C = Claim("idle", "t", "s", statistic_of=ratio, thresholds=T)\n'}, "claim 'idle' is defined in "),
    ],
    ids=["not-a-key", "a-kind", "a-layer-section", "two-files", "one-file", "no-test-in-the-module"],
)
def test_an_id_that_cannot_be_keyed_or_is_made_twice_is_one_line_at_collection(pytester, folder, files, message):  # noqa: F811
    code, text = _collect(pytester, folder, files)
    assert code == 4 and message in text, text[-3000:]
    line = next(x for x in text.splitlines() if message in x)
    if "twice" in message:  # both places, file and line
        assert line.count(".py:") == 2, line
    elif "is defined in" not in message:
        assert "give the claim another id" in line or "write letters, digits" in line, line


@pytest.mark.parametrize("cid", ["my claim/1", "noise", "mean-ablate", "first", "mlp", "layer-4", "", "4C"])
def test_such_an_id_is_refused_when_the_claim_is_made(registry, cid):
    with pytest.raises(ClaimError, match=f"claim id {cid!r}"):
        Claim(cid, "t", "s", statistic_of=lambda v: v.delta[..., -1], thresholds={"T": Threshold(0.1, "why")})
    assert cid not in claim_module.CLAIMS


def test_one_id_made_on_two_lines_of_one_file_is_recorded_with_both_lines(registry):
    Claim("dup-here", "t", "s", statistic_of=lambda v: v.delta[..., -1], thresholds={"T": Threshold(0.1, "why")})
    Claim("dup-here", "t", "s", statistic_of=lambda v: v.delta[..., -1], thresholds={"T": Threshold(0.2, "why")})
    (message,) = [m for m in claim_module.twice_messages() if "'dup-here'" in m]
    assert message.count(__file__ + ":") == 2, message


# ---------------------------------------------------------------------------------------------
# Row 4: the claim API's fields


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"thresholds": '{"T": 0.1}'}, "thresholds['T'] is 0.1, a float: write thresholds={'T': Threshold(0.1, 'why this value')}"),
        (
            {"thresholds": '[Threshold(0.1, "why")]'},
            "thresholds is [Threshold(value=0.1, reason='why')], a list: write a dict of name -> Threshold",
        ),
        ({"thresholds": '{"T": Threshold(0.1)}'}, "thresholds['T'] gives no reason: write Threshold(0.1, 'why this value')"),
        ({"thresholds": '{"T": Threshold({"fp32": 0.1}, "why")}'}, "thresholds['T'] is keyed by 'fp32': key it by dtype"),
        (
            {"needs": '"within"', "thresholds": '{"HIGH": Threshold(2.0, "a"), "LOW": Threshold(0.5, "b")}'},
            "HIGH = 2 is not below LOW = 0.5",
        ),
        ({"statistic_of": '"ratio"'}, "statistic_of is 'ratio', a str: give a function of a View"),
        ({"statistic_of": "lambda v: v.delta"}, "statistic_of returned shape (8,) for the corpus aggregate"),
        ({"statistic_of": "lambda v: 0.5"}, "statistic_of returned shape () for each prompt, whose arrays are (P, S); it takes shape (4,)"),
        ({"statistic_of": 'lambda v: "big"'}, "statistic_of returned str 'big', not a number"),
        (
            {"statistic_of": "lambda v: ratio(v) if v.delta.ndim == 1 else np.full(v.delta.shape[:-1], np.inf)"},
            "statistic_of is inf on every prompt",
        ),
    ],
    ids=[
        "bare-float",
        "list",
        "no-reason",
        "dtype-keys",
        "within-reversed",
        "text",
        "array",
        "constant",
        "returns-text",
        "inf-on-every-prompt",
    ],
)
def test_a_field_of_the_wrong_form_is_one_line_at_collection(pytester, folder, fields, message):  # noqa: F811
    code, text = _collect(pytester, folder, {"test_mistake.py": _claim("my-claim", **fields)})
    assert code == 4 and message in text, text[-3000:]
    line = next(x for x in text.splitlines() if message in x)
    assert line.startswith("ERROR: claim 'my-claim' (") and "test_mistake.py" in line, line


def test_the_per_dtype_threshold_is_judged_at_the_runs_dtype(pytester, folder):  # noqa: F811
    """`Threshold({"float32": ..., "bfloat16": ...}, why)`, the form ZERO_RELATIVE has, runs; the item records both."""
    fields = {"thresholds": '{"T": Threshold({"float32": 0.1, "bfloat16": 50.0}, "why")}'}
    (folder / "test_dtype.py").write_text(_claim("per-dtype", **fields), encoding="utf-8")
    result = _run(pytester, "my_claims", "--model", "minilm", "-k", "test_a")
    assert result.ret == 0, result.stdout.str()[-3000:]
    items = json.loads((pytester.path / "reports" / "claims.json").read_text())["claims"][0]["items"]
    assert {i["threshold"] for i in items} == {0.1} and all(i["verdict"] == "holds" for i in items)


def _profile(prompts: int = 4) -> Profile:
    sites = ("embed", "block.0", "block.1", "block.2", "final_norm")
    per = np.ones((1, len(sites), prompts)) * np.r_[0, 0, 0, 1, 2][None, :, None]
    norm = np.ones((len(sites), prompts))
    agg = np.sqrt((per**2).sum(-1))
    return Profile("m", "r", 2, sites, (0.5,), (5,) * prompts, agg, agg, np.sqrt((norm**2).sum(-1)), norm[:, 0], norm[:, 0], norm[:, 0],
                   per, per, norm)  # fmt: skip


def test_a_per_dtype_threshold_without_the_runs_dtype_is_one_line(registry):
    c = Claim("only-bf16", "t", "s", statistic_of=lambda v: v.delta[..., -1], thresholds={"T": Threshold({"bfloat16": 0.1}, "why")})
    assert c.judge_profile(_profile(), dtype="bfloat16").verdict == "holds"
    with pytest.raises(ClaimError, match=r"thresholds\['T'\] gives values for bfloat16 only, and this run is float32: add a 'float32'"):
        c.judge_profile(_profile(), dtype="float32")


def test_a_statistic_of_the_wrong_shape_on_a_real_profile_is_a_claim_error(registry):
    """A statistic that the stand-in profile cannot try (it reads a site only real models have) is checked when judged."""

    def late(v: View) -> np.ndarray:
        v.site("final_norm")
        return np.float64(1.0)  # one number for every prompt

    c = Claim("late-shape", "t", "s", statistic_of=late, thresholds={"T": Threshold(0.1, "why")})
    with pytest.raises(ClaimError, match=r"statistic_of returned shape \(\) for each prompt"):
        c.judge_profile(_profile())
