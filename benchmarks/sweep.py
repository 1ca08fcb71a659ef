"""Sweep benchmark: `harness.profile` against the note's loop, TransformerLens and a bare forward.

    python benchmarks/sweep.py --factors 16 --prompts 32             # table on stdout
    python benchmarks/sweep.py --device cuda --factors 64 --prompts 256 --json

Every method runs in this one process on the same weights (random-gpt2, seed 0) and the same
token ids, scaling block `--layer`'s output by each factor and measuring Δ = ‖H_clean − H_scaled‖_F
(first token excluded) at every site:

  a  the note's loop: per prompt (batch 1, no padding) one clean LM forward with
     output_hidden_states=True, then per factor a forward hook on the block doing `.mul_(factor)`,
     a full LM forward, and Δ per layer as `torch.norm(...).item()` (one host sync per layer).
     Clean runs once per prompt, not once per factor.
  b  harness.profile(subject, tokens, layer, factors, factor_batch=None): full base-model forwards,
     factors stacked as the memory budget allows (the default, factor_batch=1, runs one per forward).
  b+ the same with reuse_prefix=True: only the blocks after `layer` run per factor.
  c  TransformerLens 4's TransformerBridge around a copy of the same LM: per padded batch one clean
     run_with_cache, then per factor one run_with_cache with a hook on blocks.L.hook_out
     (names_filter = the sites, as a TL user caching less would). The bridge forces eager attention.
  d  the forward work alone: lm(input_ids, attention_mask, use_cache=False) over the padded
     batches `profile` uses (the clean batch once, one batch per factor), no hooks, no states.
  floor  the matrix FLOPs no method can avoid (every block on the real tokens of the clean pass,
     blocks L..N-1 per factor; causal attention counted as half the square) over the dense matmul
     rate of one large matmul measured in this run, in the run's dtype and TF32 setting.

Every method first runs once untimed on 2 prompts x 2 factors (warm-up). Times are the best of
--repeats runs. Peak memory is the extra over the memory in use before the method: CUDA
max_memory_allocated; CPU the process's VmHWM from /proc (reset through /proc/self/clear_refs)
minus VmRSS before, with glibc told to mmap every allocation of 128 KiB or more and trimmed before
each method, so that freed tensors leave the resident set (a resident-set figure: it counts pages
touched, not bytes asked for).
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from harness import Subject, load_subject, profile
from harness.errors import InputError
from harness.measure.clean import CleanPass  # the padded batches `profile` makes, reused by c and d
from harness.measure.norms import squared_distance, token_weights
from harness.model.prompts import Tokenized
from harness.settings import DTYPES

SUBJECT = "random-gpt2"


@dataclass(frozen=True)
class Options:
    factors: int = 16  # number of scaling factors, spread over 0.25..2.0
    prompts: int = 32  # number of prompts
    min_tokens: int = 5  # prompt lengths are drawn uniformly from [min_tokens, max_tokens]
    max_tokens: int = 50
    layer: int = 2  # the block whose output is scaled (the note's block 2)
    device: str = "auto"
    dtype: str = "float32"
    low_precision: str = "bfloat16"  # also run b+ in this dtype and report its Δ error vs the main dtype; "none" skips
    tf32: bool = False  # TF32 matmuls on CUDA, on every side alike
    repeats: int = 1  # timed runs per method; the best is reported
    methods: str = "abcd"  # which of a, b, c, d to run
    seed: int = 0
    json: bool = False


def main(argv: list[str] | None = None) -> int:
    options = _parse(argv)
    try:
        subject = load_subject(SUBJECT, device=options.device, dtype=options.dtype, seed=options.seed)
    except InputError as exc:
        print(f"sweep.py: error: {exc}", file=sys.stderr)
        return 2
    if options.max_tokens > subject.max_length:
        print(
            f"sweep.py: error: --max-tokens {options.max_tokens} exceeds {SUBJECT}'s {subject.max_length}: give at most that.",
            file=sys.stderr,
        )
        return 2
    if options.layer >= subject.n_blocks:
        print(f"sweep.py: error: --layer {options.layer} is not a block of {SUBJECT}: give 0 to {subject.n_blocks - 1}.", file=sys.stderr)
        return 2
    if subject.device.type == "cpu":
        _fix_cpu_allocator()
    if subject.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = options.tf32
        torch.backends.cudnn.allow_tf32 = options.tf32
    result = run(subject, options)
    print(json.dumps(result, indent=1) if options.json else _table(result))
    return 0


def run(subject: Subject, options: Options) -> dict[str, Any]:
    """All methods on one subject; returns the figures `--json` prints."""
    tokens = make_tokens(subject, options.prompts, options.min_tokens, options.max_tokens, options.seed)
    factors = [round(0.25 + 1.75 * i / max(options.factors - 1, 1), 6) for i in range(options.factors)]
    layer = options.layer
    lm = lm_head_model(subject)
    n_real = sum(tokens.lengths)
    chunks = [chunk.index.tolist() for chunk in CleanPass(subject, tokens).chunks]
    padded = sum(len(c) * max(tokens.lengths[i] for i in c) for c in chunks)
    methods: dict[str, dict[str, Any]] = {}
    deltas: dict[str, np.ndarray] = {}

    small = Tokenized(tokens.texts[:2], tokens.ids[:2], tokens.unknown[:2])  # warm-up inputs: 2 prompts, 2 factors

    def timed(name: str, fn: Callable[[Tokenized, list[list[int]], list[float]], np.ndarray | None]) -> None:
        fn(small, [[0, 1][: len(small.ids)]], factors[:2])  # untimed: kernels, allocator and caches warm up
        best, peak, out = math.inf, 0.0, None
        for _ in range(options.repeats):
            seconds, extra, out = _measure(lambda: fn(tokens, chunks, factors), subject.device)
            best, peak = min(best, seconds), max(peak, extra)
        tokens_done = n_real * (1 + len(factors))  # clean + one intervened pass per factor, real tokens
        methods[name] = {"time_s": best, "tokens_per_s": tokens_done / best, "peak_mb": peak / 2**20}
        print(f"sweep.py: {name} {best:.3f} s", file=sys.stderr, flush=True)  # progress, in case a time limit cuts the run
        if out is not None:
            deltas[name] = out

    if "a" in options.methods:
        timed("a", lambda t, c, f: note_loop(lm, t, layer, f, subject.device))
    if "b" in options.methods:
        timed("b", lambda t, c, f: profile(subject, t, layer, f, factor_batch=None).delta)
        timed("b+", lambda t, c, f: profile(subject, t, layer, f, reuse_prefix=True, factor_batch=None).delta)
    if "c" in options.methods:
        try:
            bridge = tl_bridge(lm, subject)
        except Exception as exc:  # a broken install must not stop the other columns
            bridge, reason = None, f"unavailable: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        else:
            reason = "not installed"
        if bridge is None:
            methods["c"] = {"time_s": None, "note": reason}
        else:
            timed("c", lambda t, c, f: tl_sweep(bridge, subject, t, c, layer, f))
            del bridge
    if "d" in options.methods:
        timed("d", lambda t, c, f: bare_forward(lm, t, c, f))
    rate = matmul_rate(subject.device, subject.dtype)
    flops = floor_flops(subject, tokens.lengths, layer, len(factors))
    floor = {"flops": flops, "matmul_flops_per_s": rate, "time_s": flops / rate}
    result: dict[str, Any] = {
        "machine": _machine(subject.device),
        "versions": _versions(),
        "settings": {
            **asdict(options),
            "subject": SUBJECT,
            "factor_values": factors,
            "real_tokens": n_real,
            "padded_tokens_per_pass": padded,
            "chunks": [len(c) for c in chunks],
        },
        "methods": methods,
        "floor": floor,
        "ratios": _ratios(methods, "b", floor),
        "ratios_reuse_prefix": _ratios(methods, "b+", floor),
        "agreement": _agreement(subject, deltas, layer, factors, _clean_norm(subject, tokens, layer) if "b" in deltas else None),
    }
    if options.low_precision != "none" and options.low_precision != options.dtype and "b" in options.methods:
        result["low_precision"] = _low_precision(subject, options, tokens, factors, deltas["b+"])
    return result


# ---------------------------------------------------------------------------------------------
# The methods


def make_tokens(subject: Subject, n: int, lo: int, hi: int, seed: int) -> Tokenized:
    """n prompts of token lengths uniform in [lo, hi], random ids below the tokenizer's vocabulary, seeded."""
    generator = np.random.default_rng(seed)
    vocab = min(len(subject.tokenizer), int(subject.model.config.vocab_size))
    lengths = generator.integers(lo, hi + 1, size=n)
    ids = tuple(tuple(int(t) for t in generator.integers(0, vocab, size=int(k))) for k in lengths)
    return Tokenized(texts=tuple(f"prompt {i}" for i in range(n)), ids=ids, unknown=(0,) * n)


def lm_head_model(subject: Subject) -> torch.nn.Module:
    """GPT2LMHeadModel whose transformer is the subject's weights (copied), LM head tied to wte."""
    from transformers import GPT2LMHeadModel

    lm = GPT2LMHeadModel(subject.model.config)
    lm.transformer.load_state_dict(subject.model.state_dict())
    lm.tie_weights()
    return lm.to(device=subject.device, dtype=subject.dtype).eval().requires_grad_(False)


def note_loop(lm: torch.nn.Module, tokens: Tokenized, layer: int, factors: list[float], device: torch.device) -> np.ndarray:
    """(a) The note's method. Returns Δ (F, 13) at HF's hidden_states: embed, block.0..10, final_norm."""
    block = lm.transformer.h[layer]
    squared = np.zeros((len(factors), lm.config.n_layer + 1))
    with torch.no_grad():
        for ids in tokens.ids:
            input_ids = torch.tensor([ids], device=device)  # (1, T)
            clean = lm(input_ids, output_hidden_states=True).hidden_states
            for f, factor in enumerate(factors):

                def scale(module: torch.nn.Module, args: Any, output: Any, factor: float = factor) -> Any:
                    (output if isinstance(output, torch.Tensor) else output[0]).mul_(factor)
                    return output

                handle = block.register_forward_hook(scale)
                try:
                    scaled = lm(input_ids, output_hidden_states=True).hidden_states
                finally:
                    handle.remove()
                for s, (h_clean, h_scaled) in enumerate(zip(clean, scaled, strict=True)):
                    squared[f, s] += torch.norm(h_clean[0, 1:].float() - h_scaled[0, 1:].float()).item() ** 2
    return np.sqrt(squared)


def tl_bridge(lm: torch.nn.Module, subject: Subject) -> Any:
    """TransformerBridge around a deep copy of `lm` (the bridge rewires the model it wraps), or None."""
    try:
        from transformer_lens.model_bridge.sources._bridge_builder import build_bridge_from_module
    except ImportError:
        return None
    from transformers import AutoTokenizer

    model = copy.deepcopy(lm)
    # The bridge reloads its tokenizer by name (init_kwargs["name_or_path"]), which one built in memory lacks:
    # save random-gpt2's tokenizer to a directory and give the bridge the one loaded back from there.
    with tempfile.TemporaryDirectory(prefix="bench-tokenizer-") as directory:
        subject.tokenizer.save_pretrained(directory)
        tokenizer = AutoTokenizer.from_pretrained(directory)
        return build_bridge_from_module(model, "GPT2LMHeadModel", hf_config=model.config, tokenizer=tokenizer).eval()


def tl_sweep(bridge: Any, subject: Subject, tokens: Tokenized, chunks: list[list[int]], layer: int, factors: list[float]) -> np.ndarray:
    """(c) TransformerLens: run_with_cache per factor and padded batch. Returns Δ (F, S) at the harness's sites."""
    names = ["blocks.0.hook_in", *[f"blocks.{i}.hook_out" for i in range(subject.n_blocks)], "ln_final.hook_out"]
    squared = torch.zeros((len(factors), len(names)), device=subject.device)
    with torch.inference_mode():
        for order in chunks:
            batch = tokens.padded(order, subject.device)
            weights = token_weights(batch["attention_mask"], include_first=False)  # (P, T)
            _, clean = bridge.run_with_cache(batch["input_ids"], attention_mask=batch["attention_mask"], names_filter=names)
            for f, factor in enumerate(factors):
                hook = (f"blocks.{layer}.hook_out", lambda t, hook, factor=factor: t * factor)
                with bridge.hooks(fwd_hooks=[hook]):
                    _, cache = bridge.run_with_cache(batch["input_ids"], attention_mask=batch["attention_mask"], names_filter=names)
                for s, name in enumerate(names):
                    squared[f, s] += squared_distance(clean[name], cache[name], weights).sum()
    return squared.sqrt().cpu().numpy()


def bare_forward(lm: torch.nn.Module, tokens: Tokenized, chunks: list[list[int]], factors: list[float]) -> None:
    """(d) The forwards alone: the LM on each padded batch, once clean and once per factor."""
    device = next(lm.parameters()).device
    with torch.inference_mode():
        for order in chunks:
            batch = tokens.padded(order, device)
            for _ in range(1 + len(factors)):
                lm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)


def floor_flops(subject: Subject, lengths: tuple[int, ...], layer: int, n_factors: int) -> float:
    """Matrix FLOPs on real tokens: every block once (clean), blocks layer..N-1 once per factor."""
    d = int(subject.model.config.hidden_size)
    dense = 24 * d * d * sum(lengths)  # qkv 3d², out d², mlp 4d² + 4d², 2 FLOPs per multiply-add
    attention = sum(2 * d * n * (n + 1) for n in lengths)  # QKᵀ and AV, causal half: 4·d·Σt
    per_block = dense + attention
    return float(per_block * (subject.n_blocks + n_factors * (subject.n_blocks - layer)))


def matmul_rate(device: torch.device, dtype: torch.dtype) -> float:
    """FLOP/s of one large square matmul in `dtype`, best of five after a warm-up."""
    n = 8192 if device.type == "cuda" else 1536
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = math.inf
    for i in range(6):
        _sync(device)
        start = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        if i:
            best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


# ---------------------------------------------------------------------------------------------
# Measuring


def _measure(fn: Callable[[], Any], device: torch.device) -> tuple[float, float, Any]:
    """(seconds, extra peak bytes, fn's result) for one call."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base = _reset_cpu_peak()
    start = time.perf_counter()
    out = fn()
    _sync(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) - base if device.type == "cuda" else _cpu_peak() - base
    return seconds, float(max(peak, 0)), out


def _fix_cpu_allocator() -> None:
    """glibc: serve every allocation of 128 KiB or more by mmap, so a freed tensor leaves the RSS at once.

    Without this, glibc raises its mmap threshold after large frees and keeps freed tensors in the
    heap: the first method would show the whole peak and later ones none. Every method then pays
    the same fresh-page cost for its large tensors.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD; setting it turns the dynamic threshold off
    except (OSError, AttributeError):
        pass


def _reset_cpu_peak() -> int:
    """Reset the process's peak RSS (Linux: '5' to clear_refs) and return the RSS now, in bytes."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap back first, so the baseline is what is live
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass  # not Linux or not allowed: the peak then includes earlier methods
    return _proc_status("VmRSS")


def _cpu_peak() -> int:
    return _proc_status("VmHWM")


def _proc_status(key: str) -> int:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _ratios(methods: dict[str, dict[str, Any]], b: str, floor: dict[str, float]) -> dict[str, float | None]:
    def time_of(name: str) -> float | None:
        return methods.get(name, {}).get("time_s")

    tb = time_of(b)
    out: dict[str, float | None] = {}
    for other in ("a", "c", "d"):
        to = time_of(other)
        out[f"b_over_{other}"] = tb / to if tb and to else None
    out["b_over_floor"] = tb / floor["time_s"] if tb else None
    return out


def _clean_norm(subject: Subject, tokens: Tokenized, layer: int) -> np.ndarray:
    """‖H_clean‖ per site (untimed), to express Δ differences as a share of the state they measure."""
    return profile(subject, tokens, layer, [1.5], reuse_prefix=True).clean_norm


def _agreement(
    subject: Subject, deltas: dict[str, np.ndarray], layer: int, factors: list[float], clean_norm: np.ndarray | None
) -> dict[str, float]:
    """How far each method's Δ is from b's, at sites layer+1.. that the note's loop also has.

    `<x>_vs_b`: max |Δ_x − Δ_b| / ‖H_clean‖ (a share of the state measured: meaningful also where
    Δ ≈ 0, e.g. at factor 1, where Δ is rounding noise alone and a relative difference says nothing).
    `<x>_vs_b_rel`: max |Δ_x − Δ_b| / Δ_b over the factors with |1 − s| ≥ 0.05.
    """
    if "b" not in deltas or clean_norm is None:
        return {}
    sites = subject.sites
    common = [sites.index(s) for s in sites[layer + 1 :] if s != f"block.{subject.n_blocks - 1}"]  # (a) has no raw last block
    a_sites = ["embed", *[f"block.{i}" for i in range(subject.n_blocks - 1)], "final_norm"]
    away = np.abs(1.0 - np.asarray(factors)) >= 0.05
    ref = deltas["b"][:, common]
    out = {}
    for name, delta in deltas.items():
        if name == "b":
            continue
        mine = delta[:, [a_sites.index(sites[i]) for i in common]] if name == "a" else delta[:, common]
        diff = np.abs(mine - ref)
        out[f"{name}_vs_b"] = float(np.max(diff / np.maximum(clean_norm[common], 1e-30)))
        out[f"{name}_vs_b_rel"] = float(np.max(diff[away] / np.maximum(np.abs(ref[away]), 1e-30)))
    return out


def _low_precision(subject: Subject, options: Options, tokens: Tokenized, factors: list[float], reference: np.ndarray) -> dict[str, Any]:
    """b+ with the subject in options.low_precision; Δ error against the main dtype's b+ at sites layer.."""
    low = load_subject(SUBJECT, device=options.device, dtype=options.low_precision, seed=options.seed)
    best, peak, prof = math.inf, 0.0, None
    for _ in range(options.repeats):
        seconds, extra, prof = _measure(
            lambda: profile(low, tokens, options.layer, factors, reuse_prefix=True, factor_batch=None), low.device
        )
        best, peak = min(best, seconds), max(peak, extra)
    first = options.layer + 1  # sites from block.layer on
    ref, mine = reference[:, first:], prof.delta[:, first:]
    away = np.abs(1.0 - np.asarray(factors)) >= 0.05  # near s = 1, Δ is rounding noise and a relative error means nothing
    rel = (np.abs(mine - ref) / np.maximum(np.abs(ref), 1e-30))[away]
    of_clean = np.abs(mine - ref) / np.maximum(prof.clean_norm[first:], 1e-30)  # error as a fraction of ‖H_clean‖
    return {
        "dtype": options.low_precision,
        "time_s": best,
        "peak_mb": peak / 2**20,
        "max_rel_error": float(rel.max()),  # over factors with |1 − s| ≥ 0.05
        "median_rel_error": float(np.median(rel)),
        "max_error_over_clean_norm": float(of_clean.max()),
    }


# ---------------------------------------------------------------------------------------------
# Output


def _table(result: dict[str, Any]) -> str:
    s = result["settings"]
    lines = [
        f"sweep: {s['subject']} on {result['machine']['device_name']}, dtype {s['dtype']}, tf32 {s['tf32']}, "
        f"{s['factors']} factors x {s['prompts']} prompts of {s['min_tokens']}-{s['max_tokens']} tokens, layer {s['layer']}, "
        f"best of {s['repeats']}",
        f"real tokens {s['real_tokens']}, padded tokens per pass {s['padded_tokens_per_pass']} in chunks {s['chunks']}",
        "",
        f"{'method':<44} {'time s':>9} {'tokens/s':>10} {'peak MiB':>9}",
    ]
    labels = {
        "a": "a  note's loop",
        "b": "b  harness.profile",
        "b+": "b+ harness.profile reuse_prefix=True",
        "c": "c  TransformerLens run_with_cache",
        "d": "d  bare LM forward, padded batches",
    }
    for name, label in labels.items():
        m = result["methods"].get(name)
        if m is None:
            continue
        if m.get("time_s") is None:
            lines.append(f"{label:<44} {m.get('note', 'not run')}")
            continue
        lines.append(f"{label:<44} {m['time_s']:>9.3f} {m['tokens_per_s']:>10.0f} {m['peak_mb']:>9.1f}")
    f = result["floor"]
    lines.append(
        f"{'floor  matrix FLOPs / measured matmul rate':<44} {f['time_s']:>9.3f}   "
        f"({f['flops'] / 1e12:.2f} TFLOP at {f['matmul_flops_per_s'] / 1e12:.2f} TFLOP/s)"
    )
    lp = result.get("low_precision")
    if lp:
        lines.append(
            f"{'b+ in ' + lp['dtype']:<44} {lp['time_s']:>9.3f} {'':>10} {lp['peak_mb']:>9.1f}   "
            f"Δ error vs {s['dtype']}: max {lp['max_rel_error']:.1e} rel, median {lp['median_rel_error']:.1e} rel, "
            f"max {lp['max_error_over_clean_norm']:.1e} of ‖H_clean‖"
        )
    lines.append("")
    for key in ("ratios", "ratios_reuse_prefix"):
        values = ", ".join(f"{k} {v:.3f}" if v is not None else f"{k} n/a" for k, v in result[key].items())
        lines.append(f"{key + ' (time over time)':<40} {values}")
    if result["agreement"]:
        lines.append(
            "Δ agreement with b at sites after the layer (max |Δx − Δb| / ‖H_clean‖; _rel: / Δb, factors away from 1): "
            + ", ".join(f"{k} {v:.1e}" for k, v in result["agreement"].items())
        )
    return "\n".join(lines)


def _machine(device: torch.device) -> dict[str, Any]:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_model()
    return {
        "device": str(device),
        "device_name": name,
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("torch", "transformers", "transformer-lens", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    out["cuda"] = torch.version.cuda
    return out


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        print(f"sweep.py: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _int_in(name: str, lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} {text!r} is not an integer: give one from {lo} to {hi}.") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{name} {value} is outside {lo}..{hi}: give one in that range.")
        return value

    return parse


def _parse(argv: list[str] | None) -> Options:
    p = _Parser(prog="sweep.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--factors", type=_int_in("--factors", 1, 4096), default=16, help="number of factors, spread over 0.25..2.0")
    p.add_argument("--prompts", type=_int_in("--prompts", 1, 100_000), default=32, help="number of prompts")
    p.add_argument("--min-tokens", type=_int_in("--min-tokens", 2, 1024), default=5, help="shortest prompt, tokens")
    p.add_argument("--max-tokens", type=_int_in("--max-tokens", 2, 1024), default=50, help="longest prompt, tokens")
    p.add_argument("--layer", type=_int_in("--layer", 0, 1023), default=2, help="block whose output is scaled")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--dtype", default="float32", choices=DTYPES, help="weights and activations of every method")
    p.add_argument(
        "--low-precision", default="bfloat16", choices=("none", *DTYPES), help="also run b+ in this dtype and report its Δ error"
    )
    p.add_argument("--tf32", action="store_true", help="allow TF32 matmuls on CUDA, for every method alike")
    p.add_argument("--repeats", type=_int_in("--repeats", 1, 100), default=1, help="timed runs per method, best reported")
    p.add_argument("--methods", default="abcd", help="subset of abcd to run")
    p.add_argument("--seed", type=_int_in("--seed", 0, 2**31 - 1), default=0, help="weights and prompts")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = p.parse_args(argv)
    if args.min_tokens > args.max_tokens:
        p.error(f"--min-tokens {args.min_tokens} is above --max-tokens {args.max_tokens}: give min <= max.")
    if not args.methods or set(args.methods) - set("abcd"):
        p.error(f"--methods {args.methods!r} is not a subset of abcd: give e.g. abcd or bd.")
    if not (args.device in ("auto", "cpu", "cuda") or args.device.startswith("cuda:")):
        p.error(f"--device {args.device!r} is not supported: choose auto, cpu, cuda or cuda:N.")
    return Options(**{k.replace("-", "_"): v for k, v in vars(args).items()})


if __name__ == "__main__":
    raise SystemExit(main())
