"""A sample run: claim outcomes computed from real profiles, shaped as the claims suite ships them.

    outcomes, info = sample_run("minilm", prompts=["The cat sat.", "Rain fell."])
    write_report(outcomes, info, Path("reports/sample.html"))

    python -m harness.report.sample --model minilm --out docs/sample.html

Used by the report's own tests and to draw the README's screenshot without running the suite.
The outcome dicts follow the contract that `claims/` attaches to each test item as the
`claim_outcome` user property (see `harness.report.outcomes`). Expectations here are a small
stand-in for the suite's: trained-weight claims are not applicable to random weights, and on
post-LN models (minilm) growth and the first-token claim are expected to fail.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from harness import judgement as J
from harness.profile import CleanPass, Profile, profile
from harness.subjects import load_subject

SAMPLE_PROMPTS = (
    "The old dog slept soundly.",
    "Rain fell on empty streets.",
    "Can you explain why the sky looks red at sunset?",
    "<script>alert(1)</script>",  # must show as text in the report
)

# claim -> expected verdict, per architecture; anything missing is expected to hold
_EXPECTED = {
    "random-gpt2": {"C3": J.NOT_APPLICABLE, "C4": J.NOT_APPLICABLE, "C5": J.NOT_APPLICABLE},
    "minilm": {"C3": J.REFUTED, "C5": J.REFUTED},
}


def sample_run(
    model: str = "minilm",
    prompts: Sequence[str] = SAMPLE_PROMPTS,
    layer: int = 2,
    factors: Sequence[float] = (0.5, 1.5),
    hypothesis_factors: Sequence[float] = (0.25, 0.8, 1.2, 2.0),
    c0_factor: float = 0.5,
) -> tuple[list[dict], dict]:
    """Outcome dicts (one per would-be test item) and a run-info dict, from real measurements."""
    subject = load_subject(model, device="cpu")
    clean = CleanPass(subject, list(prompts))
    prof = profile(subject, None, layer, factors, per_prompt=True, clean=clean)
    outcomes: list[dict] = []
    for claim_id, judge in J.JUDGES.items():
        for i, factor in enumerate(prof.factors):
            verdict = judge(prof, i).to_dict()
            outcomes.append(_outcome(claim_id, model, layer, "note", factor, verdict, prof, f"test_{claim_id}_note[{factor:g}]"))
    hyp = profile(subject, None, layer, hypothesis_factors, per_prompt=True, clean=clean)
    for claim_id in ("C2", "C4"):
        examples = []
        for i, factor in enumerate(hyp.factors):
            v = J.JUDGES[claim_id](hyp, i).to_dict()
            status = _status(v["verdict"], _expected(model, claim_id))
            examples.append(
                {"factor": factor, "verdict": v["verdict"], "status": status, "margin": v["margin"], "margin_text": v["margin_text"]}
            )
        worst = min(range(len(examples)), key=lambda k: examples[k]["margin"] if examples[k]["margin"] is not None else 0.0)
        verdict = J.JUDGES[claim_id](hyp, worst).to_dict()
        outcome = _outcome(claim_id, model, layer, "hypothesis", None, verdict, hyp, f"test_{claim_id}_hypothesis")
        outcome["examples"] = examples
        outcomes.append(outcome)
    layers = {n: profile(subject, None, n, [c0_factor], clean=clean) for n in range(subject.n_blocks)}
    c0 = J.judge_c0(layers).to_dict()
    outcomes.insert(0, _outcome("C0", model, layer, "note", c0_factor, c0, None, "test_C0_causality"))
    info = {
        **subject.describe(),
        "layer": layer,
        "prompts": "(sample prompts)",
        "n_prompts": len(prompts),
        "prompt_texts": list(prompts),
        "versions": _versions(),
        "hypothesis_profile": "sample",
        "hypothesis_seed": None,
        "command": "python -m harness.report.sample --model " + model,
    }
    return outcomes, info


def _outcome(
    claim_id: str, model: str, layer: int, source: str, factor: float | None, verdict: dict, prof: Profile | None, name: str
) -> dict:
    claim = J.CLAIMS[claim_id]
    expected = _expected(model, claim_id)
    evidence = dict(verdict["evidence"])
    if prof is not None:
        evidence["profile"] = prof.to_dict()
    shown = J.NOT_APPLICABLE if expected == J.NOT_APPLICABLE else verdict["verdict"]
    return {
        "claim": claim_id,
        "section": claim.section,
        "title": claim.title,
        "statement": claim.statement,
        "test": claim.test,
        "nodeid": f"claims/test_{claim_id.lower()}.py::{name}",
        "model": model,
        "layer": layer,
        "source": source,
        "factor": factor,
        "verdict": shown,
        "expected": expected,
        "expectation_reason": "sample expectation (see harness.report.sample)",
        "status": _status(shown, expected),
        "margin": verdict["margin"],
        "margin_text": verdict["margin_text"],
        "reason": verdict["reason"],
        "thresholds": {k: v for k, v in J.THRESHOLDS.items() if k in claim.test or k == "PROMPT_SHARE"},
        "evidence": evidence,
        "examples": [],
    }


def _expected(model: str, claim_id: str) -> str:
    return _EXPECTED.get(model, {}).get(claim_id, J.HOLDS)


def _status(verdict: str, expected: str) -> str:
    if J.NOT_APPLICABLE in (verdict, expected):
        return "not applicable"
    if verdict == J.HOLDS:
        return "holds" if expected == J.HOLDS else "unexpected pass"
    return "refuted as expected" if expected == J.REFUTED else "refuted"


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
    args = parser.parse_args(argv)
    outcomes, info = sample_run(args.model)
    html, js = write_report(outcomes, info, args.out)
    print(f"wrote {html} and {js}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
