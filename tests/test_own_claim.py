"""A claim of one's own, as the README writes it, run from a folder outside claims/ and outside the repo.

The README's "Write your own claim" block is saved as a test file in a temporary folder and run with
`pytest FOLDER --model minilm` through the installed pytest11 entry point (no conftest). Its verdict,
statistic and interval in the report's JSON are checked against a computation of the statistic from
the item's own profile (numpy: the aggregate Δ, and the prompt bootstrap drawn as scipy draws it).
Each mistake a user can make in a claim gets its one line and its exit code.
"""

from __future__ import annotations

import json
import re
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest

from harness.judge.bootstrap import RESAMPLES
from harness.settings import Settings

pytest_plugins = ["pytester"]
README = Path(__file__).resolve().parent.parent / "README.md"


def readme_claim() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Write your own claim") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def folder(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder outside the repo with no conftest; the plugin comes from the package's entry points."""
    names = {e.name for e in entry_points(group="pytest11")}
    assert {"harness.suite.plugin", "harness.report.collect"} <= names, "run `pip install -e .` to register the plugin"
    for name in ("HARNESS_MODEL", "HARNESS_LAYER", "HYPOTHESIS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CI", "true")  # the ci Hypothesis profile: derandomized, 6 examples
    path = pytester.path / "my_claims"
    path.mkdir()
    return path


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*args, "-p", "no:cacheprovider", timeout=600)


def test_the_readme_claim_runs_from_any_folder_and_is_judged_as_computed(pytester, folder):
    (folder / "test_reaches_final.py").write_text(readme_claim(), encoding="utf-8")
    result = _run(pytester, "my_claims", "--model", "minilm")
    assert result.ret == 0, result.stdout.str()[-3000:]
    doc = json.loads((pytester.path / "reports" / "claims.json").read_text())  # under the folder the run starts in
    assert [c["claim"] for c in doc["claims"]] == ["drift-reaches-final"]  # only the claims this run judged
    claim = doc["claims"][0]
    assert claim["figure"] == "prompt_distribution" and claim["layer_map"] is True and claim["needs"] == ">="
    note = [i for i in claim["items"] if i["source"] == "note"]
    assert [i["factor"] for i in note] == [0.5, 1.5]
    seed = Settings().seed
    for item in note:
        prof = item["evidence"]["profile"]
        delta = np.asarray(prof["prompt_delta"], dtype=np.float64)[0]  # (S, P): Δ per site and prompt at this factor
        last, at = len(prof["sites"]) - 1, prof["sites"].index(f"block.{prof['layer']}")
        statistic = np.sqrt((delta[last] ** 2).sum()) / np.sqrt((delta[at] ** 2).sum())  # Frobenius over all prompts
        assert item["statistic"] == pytest.approx(statistic, rel=1e-9)
        per_prompt = delta[last] / delta[at]
        holds = statistic >= 0.1 and np.mean(per_prompt >= 0.1) >= 0.75
        assert item["verdict"] == ("holds" if holds else "refuted") and item["threshold"] == 0.1
        n = delta.shape[1]
        draws = np.random.default_rng(seed).integers(0, n, (RESAMPLES, n))
        weights = np.stack([np.bincount(row, minlength=n) for row in draws]).astype(np.float64)  # (B, P)
        resampled = np.sqrt(weights @ (delta[last] ** 2)) / np.sqrt(weights @ (delta[at] ** 2))
        low, high = np.quantile(resampled, [0.025, 0.975])
        low, high = min(low, statistic), max(high, statistic)  # the interval contains the statistic itself
        assert item["ci95"] == pytest.approx([low, high], rel=1e-9)
        assert item["fragile"] is bool(low <= 0.1 <= high)
    cell = next(c for c in doc["matrix"]["cells"] if c["claim"] == "drift-reaches-final")
    assert cell["status"] == claim["status"] and cell["statistic_name"] == "Δ(last site) / Δ(block L)"
    html = (pytester.path / "reports" / "claims.html").read_text()
    assert 'id="claim-drift-reaches-final"' in html


MISTAKE = '''
import numpy as np
from harness import Claim, Threshold, claim_tests

def ratio(v):
    return v.delta[..., -1] / v.delta[..., v.site(f"block.{v.layer}")]
'''


@pytest.mark.parametrize(
    ("files", "code", "message"),
    [
        (
            {"test_nan.py": MISTAKE + 'C = Claim("nan-claim", "t", "s", statistic_of=lambda v: ratio(v) * np.nan, '
             'thresholds={"T": Threshold(0.1, "why")})\ntest_a, test_b = claim_tests(C)\n'},
            1,
            "claim 'nan-claim': its statistic is nan on the aggregate at factor 0.5",
        ),
        (
            {"test_bare.py": MISTAKE + 'C = Claim("bare", "t", "s", statistic_of=ratio)\ntest_a, test_b = claim_tests(C)\n'},
            4,
            "has no threshold: give thresholds={'NAME': Threshold(value, 'why this value')}",
        ),
        (
            {
                f"test_{n}.py": MISTAKE + f'C = Claim("twice", "t", "s", statistic_of=ratio, thresholds={{"T": Threshold(0.1, "why")}})\n'
                f"test_{n}, test_{n}_drawn = claim_tests(C)\n"
                for n in ("one", "two")
            },
            4,
            "claim id 'twice' is defined twice, in ",
        ),
        (
            {"test_idle.py": MISTAKE + 'C = Claim("idle", "t", "s", statistic_of=ratio, thresholds={"T": Threshold(0.1, "why")})\n'
             "def test_other():\n    pass\n"},
            4,
            "claim 'idle' is defined in ",
        ),
    ],
    ids=["nan-statistic", "no-threshold", "id-twice", "never-tested"],
)
def test_a_mistake_in_a_claim_is_one_line_naming_it(pytester, folder, files, code, message):
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    result = _run(pytester, "my_claims", "--model", "minilm", "--no-report")
    text = result.stdout.str() + result.stderr.str()
    assert result.ret == code, text[-3000:]
    assert message in text, text[-3000:]
    assert "Traceback (most recent call last)" not in text and "INTERNALERROR" not in text, text[-3000:]


def test_a_run_without_claim_tests_is_left_alone(pytester, folder):
    """Installed, the plugin sees every pytest run; one that collects no claim test gets no header, report or profile."""
    (folder / "test_plain.py").write_text("def test_plain():\n    pass\n", encoding="utf-8")
    result = _run(pytester, "my_claims", "--model", "/no/such/model")
    assert result.ret == 0, result.stdout.str()[-2000:]
    assert "harness:" not in result.stdout.str()
    assert not (pytester.path / "reports").exists()


def test_each_claim_draws_its_own_factors_and_the_same_ones_in_every_run(pytester, folder):
    """Under the derandomized ci profile Hypothesis seeds a test from its function's source, which claim_tests
    shares between claims; claim_seed gives each claim id its own draws. Two copies of the README claim under
    other ids draw different factors, and a second run draws the same ones."""
    text = readme_claim()
    for name, claim_id in (("test_a.py", "drift-a"), ("test_b.py", "drift-b")):
        (folder / name).write_text(text.replace('"drift-reaches-final"', f'"{claim_id}"'), encoding="utf-8")

    def drawn() -> dict[str, list[float]]:
        result = _run(pytester, "my_claims", "--model", "minilm", "-k", "drawn")
        assert result.ret == 0, result.stdout.str()[-3000:]
        doc = json.loads((pytester.path / "reports" / "claims.json").read_text())
        return {c["claim"]: [e["factor"] for i in c["items"] for e in i.get("examples") or []] for c in doc["claims"]}

    first = drawn()
    assert set(first) == {"drift-a", "drift-b"} and all(len(f) >= 2 for f in first.values()), first
    assert first["drift-a"] != first["drift-b"]
    assert drawn() == first
