"""Command line: `profile` prints Δ per site as a table or as JSON; `report merge` joins claim reports.

    layer-claims profile --model minilm --layer 2 --factor 0.5 --prompt "The cat sat."   # the installed command, or:
    python -m harness profile --model minilm --layer 2 --factor 0.5 --factor 1.5 --prompt "The cat sat."
    python -m harness profile --model random-gpt2 --prompts harness/note/prompts.txt --factor-batch 3 --json
    python -m harness report merge reports/gpt2.json reports/minilm.json -o reports/matrix.html

Where the subject has an LM head the effect on its next-token predictions is measured too: `kl`,
`top1_agreement` and `nll_change`, one value per factor (harness.measure.predictions), over the same tokens
as Δ (--include-first-token counts each prompt's first). Without a head they are null in --json and
`predictions_not_measured` says why.

The measurement flags are made from `harness.settings.Settings` (one per field, same name, help
and default). Bad input prints one line naming the value, the flag and what is allowed, and exits
2; Ctrl-C prints one line and exits 130; no traceback. A value that starts with '-' (`--factor -0.5`, `--factor -inf`) is a value.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import numpy as np

from harness.errors import INTERRUPTED_EXIT, HarnessError, InputError
from harness.report import merge
from harness.settings import CLI, Settings, options
from harness.suite.runs import load_subject_for

# Flags of the command itself (output shape), not settings of the measurement.
OUTPUT_FLAGS = ("--prompt", "--per-prompt", "--json")


def main(argv: Sequence[str] | None = None, prog: str = "python -m harness") -> int:
    try:  # the parser is built from Settings and the kinds: Ctrl-C there is the same boundary
        parser = _parser(prog)
        args = parser.parse_args(values_kept(list(sys.argv[1:] if argv is None else argv), parser))
        return args.run(args)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: one line, and the shell's code for SIGINT
        print("interrupted (Ctrl-C): stopped before the result was printed; nothing was written.", file=sys.stderr)
        return INTERRUPTED_EXIT


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors on one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def console() -> None:
    """The `layer-claims` command (pyproject [project.scripts]): main() under its own name, same exit codes."""
    sys.exit(main(prog="layer-claims"))


def _parser(prog: str = "python -m harness") -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description=__doc__.split("\n")[0], allow_abbrev=False)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    prof = commands.add_parser(
        "profile",
        help="Δ at every site for each factor",
        description="Edit one block's state with an intervention (--intervention, default scale: s·h of the block's output); "
        "print Δ per site for each strength.",
    )
    prof.allow_abbrev = False
    for option in options():
        if CLI not in option.where:
            continue
        if option.switch:
            prof.add_argument(option.flag, dest=option.name, action="store_true", default=None, help=option.help_text())
        else:
            action = "append" if option.repeat else "store"
            prof.add_argument(option.flag, dest=option.name, action=action, default=None, help=option.help_text())
    prof.add_argument("--prompt", action="append", default=[], help="a prompt, repeatable")
    prof.add_argument("--per-prompt", action="store_true", help="with --json: add per-prompt Δ")
    prof.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    prof.set_defaults(run=_profile)
    merge.add_parser(commands).set_defaults(run=merge.run)
    return parser


def values_kept(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """`--factor -inf` as `--factor=-inf`: argparse reads any '-word' after a flag as another flag."""
    flags, takes_value = set(), set()
    for sub in _subparsers(parser):
        for action in sub._actions:
            flags.update(action.option_strings)
            if action.nargs is None:  # store / append: one value
                takes_value.update(action.option_strings)
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in takes_value and i + 1 < len(argv) and argv[i + 1].startswith("-") and argv[i + 1].split("=")[0] not in flags:
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _subparsers(sub)
    return found


def settings_from(args: argparse.Namespace) -> Settings:
    """The Settings a parsed command line gives; errors name the flag and the value."""
    given = {o.name: (getattr(args, o.name), o.flag) for o in options() if CLI in o.where and getattr(args, o.name) is not None}
    return Settings.from_text(given)


def _profile(args: argparse.Namespace) -> int:
    from harness import profile
    from harness.measure.clean import terminal_progress
    from harness.model.prompts import left_out_note, read_prompt_file, tokenize, unknown_tokens_warning

    settings = settings_from(args)
    prompts, corpus = list(args.prompt), None
    if settings.prompts is not None:
        try:
            corpus = read_prompt_file(settings.prompts)
        except OSError as exc:  # a FIFO, a file that vanished, a permission change since the check
            raise InputError(
                f"--prompts {str(settings.prompts)!r} cannot be read ({exc.strerror or exc}): give a readable text file."
            ) from exc
        prompts += corpus.texts
    if not prompts:
        raise InputError("no prompts given: pass --prompt TEXT (repeatable) or --prompts FILE.")
    subject = load_subject_for(settings)
    tokens = tokenize(subject, prompts, settings.include_first_token)
    unknown = tokens.n_unknown
    for warning in (corpus and corpus.warning, unknown_tokens_warning(tokens)):  # once the input is known good
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
    left_out = left_out_note(tokens, subject.name)
    if left_out:
        print(f"note: {left_out}", file=sys.stderr)
    result = profile(
        subject,
        tokens,
        settings.layer,
        settings.factors,
        per_prompt=args.per_prompt,
        memory_budget_mb=settings.memory_budget_mb,
        reuse_prefix=settings.reuse_prefix,
        factor_batch=settings.factor_batch,
        predictions=subject.head is not None,
        include_first_token=settings.include_first_token,
        intervention=settings.intervention_spec(),
        progress=terminal_progress("profile"),  # a bar on a terminal's stderr, for corpora of 20 chunks or more
    )
    why_not = _predictions_not_measured(subject, result)
    note = _positions_note(settings)
    if note:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        out = {
            **result.to_dict(),
            "device": str(subject.device),
            "dtype": str(subject.dtype).removeprefix("torch."),
            "n_prompts": len(tokens.texts),  # measured: those given less the ones left out
            "unknown_tokens": unknown,
            "prompts_left_out": list(tokens.left_out),
            "n_prompts_left_out": len(tokens.left_out),
        }
        if why_not:
            out["predictions_not_measured"] = why_not
        if note:
            out["note"] = note
        out.update({k: v for k, v in settings.as_dict().items() if k not in out})  # factor_batch, reuse_prefix, ... flat
        out["settings"] = settings.as_dict()
        print(json.dumps(out, allow_nan=False))
    else:
        print(_table(result, subject.describe(), settings))
        if result.kl is None:  # the Δ table stays the whole of stdout; the reason goes beside it
            print(f"note: effect on predictions not measured: {why_not['kl']}", file=sys.stderr)
        else:
            print(_predictions_table(result, why_not))
    return 0


def _positions_note(settings: Settings) -> str:
    """The one-line note for --positions first measured without the first token: a real experiment, Δ at L 0 by construction."""
    if settings.positions != "first" or settings.include_first_token:
        return ""
    return (
        f"--positions first edits only each prompt's first token, which Δ does not count here: Δ at block {settings.layer} is 0 "
        "by construction, and later sites show what the edited first token does to the others (--include-first-token counts it)"
    )


def _predictions_not_measured(subject, result) -> dict[str, str]:
    """measure -> why it is null (no LM head; a masked LM has no next-token loss); empty when all were measured."""
    if subject.head is None:
        return dict.fromkeys(("kl", "top1_agreement", "nll_change"), f"{subject.name} has {subject.head_note}")
    if result.nll_change is None:
        return {"nll_change": f"{subject.name}'s {subject.head_note} predicts each position's own token: there is no next token to score"}
    if not np.isfinite(result.nll_change).all():  # no position of any prompt has a next token: a mean over none
        counted = "every token" if result.predictions_include_first else "every token but the first"
        longest = max(result.prompt_lengths)
        return {
            "nll_change": f"no position has a next token to score: over {counted}, a prompt of T tokens scores "
            f"{'T − 1' if result.predictions_include_first else 'T − 2'} next tokens, and the longest prompt here is {longest} "
            f"tokens (first token: {subject.first.describe}); give prompts of "
            f"{2 if result.predictions_include_first else 3} tokens or more"
            + ("" if result.predictions_include_first else ", or --include-first-token")
        }
    return {}


def _predictions_table(result, why_not: dict[str, str]) -> str:
    """One line per factor: kl, top-1 agreement and NLL change (or why they were not measured)."""
    which = "every token, the first included" if result.predictions_include_first else "every token but the first"
    lines = [
        "",
        f"effect on predictions over {which}: kl = mean KL(p_clean ‖ p_scaled) (nats), top1 = share of unchanged argmax, "
        "nll = mean NLL_scaled − NLL_clean of the next token (nats/token)",
        f"{'factor':>8} | {'kl':>12} | {'top1':>8} | {'nll':>12}",
    ]
    lines.append("-" * len(lines[-1]))
    for f, factor in enumerate(result.factors):
        nll = "n/a" if "nll_change" in why_not else format(result.nll_change[f], ".6g")
        lines.append(f"{factor:>8g} | {result.kl[f]:>12.6g} | {result.top1_agreement[f]:>8.4f} | {nll:>12}")
    if "nll_change" in why_not:
        lines.append(f"nll n/a: {why_not['nll_change']}")
    return "\n".join(lines)


def _intervention_words(result) -> str:
    """ "scale" or e.g. "noise (positions rest, component mlp)", with add's direction sha256."""
    extra = [f"positions {result.positions}"] if result.positions != "all" else []
    extra += [f"component {result.component}"] if result.component != "output" else []
    extra += [f"direction sha256 {result.direction_sha256}"] if result.direction_sha256 else []
    return result.intervention + (f" ({', '.join(extra)})" if extra else "")


def _table(result, about: dict[str, object], settings: Settings) -> str:
    """One row per site; per factor Δ and Δ/‖H_clean‖, with or without the first token as the settings say."""
    if settings.include_first_token:
        delta, rel, which = (
            result.delta_all_tokens,
            result.relative_delta_all_tokens,
            "every token, the first included (--include-first-token)",
        )
    else:
        delta, rel, which = result.delta, result.relative_delta, "every token but the first (§3.2)"
    lines = [
        f"model {about['model']} ({about['revision']}), device {about['device']}, dtype {about['dtype']}, "
        f"layer {result.layer}, intervention {_intervention_words(result)}, {len(result.prompt_lengths)} prompts, "
        f"factor batch {settings.factor_batch or 'auto'}" + (", prefix replayed" if settings.reuse_prefix else ""),
        f"Δ = ‖H_clean − H_intervened‖_F over {which}; rel = Δ / ‖H_clean‖ over the same tokens; s = the strength (factor)",
    ]
    header = f"{'site':<12}"
    for factor in result.factors:
        header += f" | {'Δ s=' + format(factor, 'g'):>12} {'rel':>8}"
    lines += [header, "-" * len(header)]
    for s, site in enumerate(result.sites):
        lines.append(f"{site:<12}" + "".join(f" | {delta[f, s]:>12.4g} {rel[f, s]:>8.4f}" for f in range(len(result.factors))))
    return "\n".join(lines)
