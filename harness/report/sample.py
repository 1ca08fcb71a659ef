"""A sample run: claim outcomes computed from real profiles, shaped as the claims suite ships them.

    outcomes, info = sample_run("minilm", prompts=["The cat sat.", "Rain fell."])   # ClaimOutcome records
    outcomes, info = sample_run("minilm", prompts=corpus())    # the suite's default corpus (claims/prompts.txt)
    write_report(outcomes, info, Path("reports/sample.html"))

    python -m harness.report.sample --model minilm --out docs/sample.html [--corpus]

Used by the report's own tests and to draw the README's screenshot without running the suite.
The outcomes are the records (harness.judge.outcome.ClaimOutcome) the claims suite attaches to each
test item, held to the suite's own expectations file (claims/expectations.toml).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from harness import CleanPass, profile
from harness.judge import judgement as J
from harness.judge.expectations import load_expectations
from harness.judge.outcome import ClaimOutcome, Example, status_of
from harness.model import load_subject
from harness.settings import Settings
from harness.suite.checks import prediction_curves, profiles, token_norms

SAMPLE_PROMPTS = (
    "The old dog slept soundly.",
    "Rain fell on empty streets.",
    "Can you explain why the sky looks red at sunset?",
    "<script>alert(1)</script>",  # must show as text in the report
)
EXPECTATIONS = Path(__file__).resolve().parents[2] / "claims" / "expectations.toml"
CORPUS = Path(__file__).resolve().parents[2] / "claims" / "prompts.txt"


def corpus(path: Path = CORPUS) -> list[str]:
    """The claims suite's default prompts, as `pytest claims/` reads them."""
    from harness.model.prompts import read_prompts

    return read_prompts(path)


def sample_run(
    model: str = "minilm",
    prompts: Sequence[str] = SAMPLE_PROMPTS,
    layer: int = 2,
    factors: Sequence[float] = (0.5, 1.5),
    hypothesis_factors: Sequence[float] = (0.25, 0.8, 1.2, 2.0),
    c0_factor: float = 0.5,
    expectations: Path = EXPECTATIONS,
) -> tuple[list[ClaimOutcome], dict]:
    """Outcome records (one per would-be test item) and a run-info dict, from real measurements."""
    expected = load_expectations(expectations, model, layer)
    subject = load_subject(model, device="cpu")
    clean = CleanPass(subject, list(prompts))
    prof = profile(subject, None, layer, factors, per_prompt=True, clean=clean)

    def outcome(verdict: J.Verdict, source: str, factor: float | None, name: str, **kw: object) -> ClaimOutcome:
        claim = verdict.claim
        return ClaimOutcome.measured(
            verdict,
            expected[claim].verdict,
            expectation_reason=f"{expected[claim].where}: {expected[claim].reason}",
            nodeid=f"claims/test_{claim.lower()}.py::{name}",
            model=model,
            layer=layer,
            source=source,
            factor=factor,
            **kw,  # type: ignore[arg-type]
        )

    outcomes: list[ClaimOutcome] = []
    for claim_id, judge in J.JUDGES.items():
        for i, factor in enumerate(prof.factors):
            extra = {"profile": prof.to_dict(), **({"token_norms": token_norms(prof)} if claim_id == "C5" else {})}
            outcomes.append(outcome(judge(prof, i), "note", factor, f"test_{claim_id}_note[{factor:g}]", evidence=extra))
    hyp = profile(subject, None, layer, hypothesis_factors, per_prompt=True, clean=clean)
    for claim_id in ("C1", "C2", "C3", "C4", "C5"):  # one property test per claim, as the suite has
        verdicts = [J.JUDGES[claim_id](hyp, i) for i in range(len(hyp.factors))]
        examples = tuple(
            Example(f, v.verdict, status_of(v.verdict, expected[claim_id].verdict), v.margin, v.margin_text)
            for f, v in zip(hyp.factors, verdicts, strict=True)
        )
        closest = min(verdicts, key=lambda v: v.margin if v.margin is not None else 0.0)  # each example's own verdict
        outcomes.append(outcome(closest, "hypothesis", None, f"test_{claim_id}_hypothesis", examples=examples))
    layers = {n: profile(subject, None, n, [c0_factor], per_prompt=True, clean=clean) for n in range(subject.n_blocks)}
    outcomes.insert(0, outcome(J.judge_c0(layers), "note", c0_factor, "test_C0_causality"))
    outcomes += _c6(subject, list(prompts), layer, factors, expected["C6"], outcome)
    info = {
        **subject.describe(),
        "layer": layer,
        "prompts": "(sample prompts)" if list(prompts) != corpus() else str(CORPUS),
        "n_prompts": len(prompts),
        "prompt_texts": list(prompts),
        "versions": _versions(),
        "hypothesis_profile": "sample",
        "hypothesis_seed": None,
        "command": "python -m harness.report.sample --model " + model,
    }
    return outcomes, info


def _c6(
    subject: object, prompts: list[str], layer: int, factors: Sequence[float], expected: object, outcome: Callable
) -> list[ClaimOutcome]:
    """C6 as its test records it: not applicable without an LM head or by expectation, else judged per factor."""
    why = None if subject.head is not None else f"{subject.name} has {subject.head_note}"
    if why is not None or expected.verdict == J.NOT_APPLICABLE:
        verdict = J.Verdict("C6", J.NOT_APPLICABLE, 0.0, "", why or expected.reason)
        return [outcome(verdict, "applicability", None, "test_C6_predictions_change")]
    measure = profiles(subject, lambda: CleanPass(subject, prompts, predictions=True), Settings(), predictions=True)
    prof = measure(layer, tuple(factors))
    out = []
    for i, factor in enumerate(prof.factors):
        evidence = {**prediction_curves(measure, layer, subject.n_blocks, factor), "profile": prof.to_dict()}
        out.append(outcome(J.judge_c6(prof, i), "note", factor, f"test_C6_predictions_change[{factor:g}]", evidence=evidence))
    return out


def _versions() -> dict[str, str]:
    import hypothesis
    import numpy
    import torch
    import transformers

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "hypothesis": hypothesis.__version__,
        "numpy": numpy.__version__,
    }


def main(argv: Sequence[str] | None = None) -> int:
    from harness.report.write import write_report

    parser = argparse.ArgumentParser(description="Write a sample claim report from real measurements (no pytest).")
    parser.add_argument("--model", default="minilm", help="subject to measure: minilm or random-gpt2 work offline")
    parser.add_argument("--out", type=Path, default=Path("reports/sample.html"), help="HTML path; the JSON goes beside it")
    parser.add_argument("--corpus", action="store_true", help=f"measure the suite's default prompts ({CORPUS.name}), not the 4 samples")
    args = parser.parse_args(argv)
    outcomes, info = sample_run(args.model, prompts=corpus() if args.corpus else SAMPLE_PROMPTS)
    html, js = write_report(outcomes, info, args.out)
    print(f"wrote {html} and {js}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
