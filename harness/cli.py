"""Command line: `python -m harness profile ...` prints Δ per site as a table or as JSON.

    python -m harness profile --model minilm --layer 2 --factor 0.5 --factor 1.5 --prompt "The cat sat."
    python -m harness profile --model random-gpt2 --prompts claims/prompts.txt --json

Flags carry the names of `harness.settings.Settings`. Bad input prints one line naming the value
and what is allowed, and exits 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.errors import HarnessError, InputError
from harness.settings import NOTE_FACTORS, NOTE_LAYER, Settings, check_factor


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    prof = commands.add_parser("profile", help="Δ at every site for each factor", description="Scale one block's output; print Δ per site.")
    prof.add_argument("--model", default=Settings.model, help="gpt2 (default), minilm, random-gpt2, a Hub id or a local directory")
    prof.add_argument("--layer", type=_integer("layer"), default=NOTE_LAYER, help=f"block whose output is scaled (default {NOTE_LAYER})")
    prof.add_argument(
        "--factor", type=_factor, action="append", help=f"scaling factor, repeatable (default {' '.join(map(str, NOTE_FACTORS))})"
    )
    prof.add_argument("--prompt", action="append", default=[], help="a prompt, repeatable")
    prof.add_argument("--prompts", type=Path, help="a text file, one prompt per line ('#' lines are comments)")
    prof.add_argument(
        "--include-first-token", action="store_true", help="the table's Δ counts the first token (the note excludes it, §3.2)"
    )
    prof.add_argument("--device", default=Settings.device, help="auto (CUDA when present), cpu, cuda, cuda:N")
    prof.add_argument("--dtype", default=Settings.dtype, help="float32 (default), bfloat16, float16")
    prof.add_argument(
        "--factor-batch",
        type=_integer("factor-batch"),
        default=1,
        help="factors stacked per forward (default 1: every forward has the clean pass's shapes, so Δ before the layer is "
        "bit-exact 0 as in the note's loop; larger is faster on GPUs, with float32 rounding of ~1e-7 relative there)",
    )
    prof.add_argument("--per-prompt", action="store_true", help="with --json: add per-prompt Δ")
    prof.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    prof.set_defaults(run=_profile)
    return parser


def _profile(args: argparse.Namespace) -> int:
    from harness.profile import profile
    from harness.prompts import read_prompts
    from harness.subjects import load_subject

    settings = Settings(
        model=args.model,
        device=args.device,
        dtype=args.dtype,
        layer=args.layer,
        factors=tuple(args.factor or NOTE_FACTORS),
        prompts=args.prompts,
        include_first_token=args.include_first_token,
    ).validated()
    prompts = list(args.prompt)
    if settings.prompts is not None:
        prompts += read_prompts(settings.prompts)
    if not prompts:
        raise InputError("no prompts given: pass --prompt TEXT (repeatable) or --prompts FILE.")
    subject = load_subject(settings.model, device=settings.device, dtype=settings.dtype, seed=settings.seed)
    result = profile(
        subject, prompts, settings.layer, settings.factors, per_prompt=args.per_prompt, memory_budget_mb=settings.memory_budget_mb
    )
    if args.json:
        out = {**result.to_dict(), "device": str(subject.device), "dtype": settings.dtype, "n_prompts": len(prompts)}
        print(json.dumps(out, allow_nan=False))
    else:
        print(_table(result, subject.describe(), settings.include_first_token))
    return 0


def _table(result, about: dict[str, object], include_first: bool) -> str:
    """One row per site; per factor Δ and Δ/‖H‖ without and with the first token."""
    lines = [
        f"model {about['model']} ({about['revision']}), device {about['device']}, dtype {about['dtype']}, "
        f"layer {result.layer} scaled, {len(result.prompt_lengths)} prompts",
        "Δ = ‖H_clean − H_scaled‖_F over the selected tokens; rel = Δ / ‖H_clean‖"
        + ("; the first token counted (--include-first-token)" if include_first else "; first token excluded"),
    ]
    header = f"{'site':<12}"
    for factor in result.factors:
        header += f" | {'s=' + format(factor, 'g'):>10} {'rel':>8} {'Δ(all)':>10} {'rel(all)':>8}"
    lines += [header, "-" * len(header)]
    rel, rel_all = result.relative_delta, result.relative_delta_all_tokens
    for s, site in enumerate(result.sites):
        row = f"{site:<12}"
        for f in range(len(result.factors)):
            row += f" | {result.delta[f, s]:>10.4g} {rel[f, s]:>8.4f} {result.delta_all_tokens[f, s]:>10.4g} {rel_all[f, s]:>8.4f}"
        lines.append(row)
    return "\n".join(lines)


def _factor(text: str) -> float:
    try:
        return check_factor(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _integer(name: str):
    def parse(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} {text!r} is not an integer: give a block index such as 2.") from None

    return parse
