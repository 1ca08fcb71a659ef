"""A sample run: claim outcomes computed from real profiles, shaped as the claims suite ships them.

    outcomes, info = sample_run("minilm", prompts=["The cat sat.", "Rain fell."])   # ClaimOutcome records
    outcomes, info = sample_run("minilm", prompts=corpus())    # the suite's default corpus (harness/note/prompts.txt)
    write_report(outcomes, info, Path("reports/sample.html"))

    python -m harness.report.sample --model minilm --out docs/sample.html [--corpus]

Used by the report's own tests and to draw the README's screenshot without running the suite.
The outcomes are the records (harness.judge.outcome.ClaimOutcome) the claims suite attaches to each
test item, held to the suite's own expectations file (harness/note/expectations.toml).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.judge.expectations import load_expectations
from harness.judge.outcome import ClaimOutcome, Example, status_of
from harness.judge.verdict import NOT_APPLICABLE, Verdict
from harness.model import load_subject
from harness.note import EXPECTATIONS, NOTE_CLAIMS
from harness.note import PROMPTS as CORPUS
from harness.settings import Settings

SAMPLE_PROMPTS = (
    "The old dog slept soundly.",
    "Rain fell on empty streets.",
    "Can you explain why the sky looks red at sunset?",
    "<script>alert(1)</script>",  # must show as text in the report
)


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
    """Outcome records (one per would-be test item) and a run-info dict, from real measurements.

    Every note claim is run through its own record, as its test runs it: not applicable by its
    `applies` (or its expectation, for a claim with measurements of its own), else judged at
    `factors` (C0 at `c0_factor`), and a claim judged on one profile also over `hypothesis_factors`
    as one property item.
    """
    from harness.measure.session import Measurements
    from harness.model.prompts import tokenize

    expected = load_expectations(expectations, model, layer)
    subject = load_subject(model, device="cpu")
    settings = Settings(model=model, layer=layer, device="cpu")
    run = Measurements(subject, tokenize(subject, list(prompts)), settings).at(settings)

    def outcome(claim: object, verdict: Verdict, source: str, factor: float | None, name: str, **kw: object) -> ClaimOutcome:
        wanted = expected[claim.id]
        return ClaimOutcome.measured(
            verdict,
            claim,
            wanted.verdict,
            expectation_reason=f"{wanted.where}: {wanted.reason}",
            nodeid=f"claims/test_{claim.id.lower()}.py::{name}",
            model=model,
            layer=layer,
            source=source,
            factor=factor,
            **kw,  # type: ignore[arg-type]
        )

    outcomes: list[ClaimOutcome] = []
    for claim in NOTE_CLAIMS:
        wanted = expected[claim.id]
        why = claim.applies(subject, layer) if claim.applies is not None else None
        if why is None and wanted.verdict == NOT_APPLICABLE and claim.measure is not None:
            why = wanted.reason  # not measured: it needs passes of its own; one judged on the run's profile costs nothing
        if why is not None:
            verdict = Verdict(claim.id, NOT_APPLICABLE, 0.0, "", why)
            outcomes.append(outcome(claim, verdict, "applicability", None, f"test_{claim.id}_note"))
            continue
        for factor in [c0_factor] if claim.draws is not None else factors:
            measured = claim.measured(run, factor)
            extra = dict(claim.evidence(run, factor, measured)) if claim.evidence is not None else {}
            if hasattr(measured, "to_dict"):
                extra["profile"] = measured.to_dict()
            verdict = claim.verdict(measured, run)
            outcomes.append(outcome(claim, verdict, "note", factor, f"test_{claim.id}_note[{factor:g}]", evidence=extra))
        if claim.measure is None:  # one property test per claim judged on one profile, as the suite has
            verdicts = [claim.verdict(claim.measured(run, f), run) for f in hypothesis_factors]
            examples = tuple(
                Example(f, v.verdict, status_of(v.verdict, wanted.verdict), v.margin, v.margin_text)
                for f, v in zip(hypothesis_factors, verdicts, strict=True)
            )
            closest = min(verdicts, key=lambda v: v.margin if v.margin is not None else 0.0)  # each example's own verdict
            outcomes.append(outcome(claim, closest, "hypothesis", None, f"test_{claim.id}_hypothesis", examples=examples))
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
