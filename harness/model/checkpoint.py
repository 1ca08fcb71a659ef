"""What a checkpoint's files hold, checked against the model they build: one SubjectLoadError naming the file.

    config = read_config(directory / "config.json", name)      # a dict with a model_type
    check_size(name, spec, config, directory)                   # before anything is allocated
    info = same_on_4_and_5(lm, info, directory)                 # from_pretrained's loading info, alike on 4 and 5
    check_weights_match(name, spec, model, info, directory)     # missing, unexpected, mismatched keys

The safetensors headers are read directly (keys and shapes, no tensor loaded), so what is stored is
known independently of transformers' own ignore lists and of how each version reports mismatches.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.errors import SubjectLoadError
from harness.model.architectures import ARCHITECTURES, Architecture

SHOWN_KEYS = 6  # weight keys quoted per kind of disagreement; the rest are counted


def same_on_4_and_5(lm: nn.Module, info: dict[str, Any], directory: Path) -> dict[str, Any]:
    """from_pretrained's loading info, told alike by transformers 4 and 5.

    Unexpected keys that the model class's ignore list hides are added back (transformers 5's GPT-2
    ignores the pattern "attn.bias", which also matches the real weight c_attn.bias); the row's
    `tolerated` keys then decide, as for any key. Mismatched keys become (key, stored shape, model
    shape) (transformers 4 gives the key alone), the stored shape read from the safetensors headers.
    """
    shapes = _stored_shapes(directory)
    own = {key: tuple(value.shape) for key, value in lm.state_dict().items()}
    prefix = lm.base_model_prefix + "."
    patterns = getattr(type(lm), "_keys_to_ignore_on_load_unexpected", None) or ()
    unexpected = list(info.get("unexpected_keys", ()))
    hidden = [
        key
        for key in shapes
        if key not in own and prefix + key not in own and key not in unexpected and any(re.search(p, key) for p in patterns)
    ]
    mismatched = []
    for entry in info.get("mismatched_keys", ()):
        if isinstance(entry, str):  # transformers 4: the model's key alone
            stored = shapes.get(entry, shapes.get(entry.removeprefix(prefix)))
            entry = (entry, stored, own.get(entry)) if stored is not None and entry in own else entry
        mismatched.append(entry)
    return {**info, "unexpected_keys": unexpected + hidden, "mismatched_keys": mismatched}


def split_loading_info(info: dict[str, Any], spec: Architecture) -> tuple[dict[str, Any], list[str]]:
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


def read_config(path: Path, name: str) -> dict[str, Any]:
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


def unreadable_weights(name: str, directory: Path, exc: BaseException) -> str:
    """Name the weights file that fails to open (safetensors checks its header against the file size)."""
    from safetensors import safe_open

    bad = []
    for path in sorted(directory.glob("*.safetensors")):
        try:
            with safe_open(str(path), "pt") as handle:
                handle.keys()
        except Exception as error:  # any failure to open is what we report
            size = path.stat().st_size
            bad.append(f"{path} ({size} bytes: {first_line(error)})")
    if not bad:  # every file opens: the config's values cannot build this model from these weights
        return (
            f"Cannot load model {name!r}: the model described by {directory / 'config.json'} cannot be built from the "
            f"weights in {directory} ({type(exc).__name__}: {first_line(exc)}). Check config.json's values, or save the model again."
        )
    return (
        f"Cannot load model {name!r}: cannot read {'; '.join(bad)}. The file is empty, truncated or not a safetensors file: "
        "download or save it again (model.save_pretrained(dir, safe_serialization=True))."
    )


def check_size(name: str, spec: Architecture, config: object, directory: Path) -> None:
    """Refuse, before anything is allocated, a config that describes a model far larger than its weights.

    A config.json with the wrong model_type or sizes (a 7B Llama's defaults over a small GPT-2's
    weights) would otherwise build and randomly initialise the whole model before the key check.
    The model is built on the meta device (no memory) and its parameter count compared with the
    values stored in the safetensors headers; a 10% margin covers parts a checkpoint may lack
    (BERT's pooler in masked-LM checkpoints). Finer disagreements are found by the key check.
    """
    from transformers import AutoModel

    try:
        stored = sum(math.prod(shape) for shape in _stored_shapes(directory).values())
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
            f"({type(exc).__name__}: {first_line(exc)}). Check config.json's values, or save the model again."
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


def check_weights_match(name: str, spec: Architecture, model: nn.Module, info: dict[str, Any], directory: Path) -> None:
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
    configured = len(blocks_of(model, spec, name))
    stored = _stored_blocks(directory, spec)  # read independently: HF's ignore lists hide some keys (GPT-2's "attn.bias" hides c_attn.bias)
    if stored and stored != set(range(configured)):
        problems = {f"blocks stored ({_ranges(stored)}; the config has {configured}: {_ranges(set(range(configured)))})": [], **problems}
    if not problems:
        return
    said = "; ".join(
        f"{len(keys)} {kind}: {', '.join(keys[:SHOWN_KEYS])}{f' and {len(keys) - SHOWN_KEYS} more' if len(keys) > SHOWN_KEYS else ''}"
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
    pattern = re.compile(rf"(?:^|\.){re.escape(spec.blocks)}\.(\d+)\.")
    return {int(m[1]) for key in _stored_shapes(directory) if (m := pattern.search(key))}


def _stored_shapes(directory: Path) -> dict[str, tuple[int, ...]]:
    """Every key of the safetensors files in `directory` and its shape, read from the headers (no tensor is loaded)."""
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for path in sorted(directory.glob("*.safetensors")):
        with safe_open(str(path), "pt") as handle:
            shapes.update({key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()})
    return shapes


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


def weights_digest(weights: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in weights:
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 22), b""):
                digest.update(chunk)
    return f"sha256:{digest.hexdigest()[:16]}" if weights else "unknown"


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def blocks_of(model: nn.Module, spec: Architecture, name: str) -> nn.ModuleList:
    blocks = module_at(model, spec.blocks)
    if not isinstance(blocks, nn.ModuleList) or len(blocks) == 0:
        raise SubjectLoadError(
            f"Cannot load model {name!r}: the {spec.model_type} row of harness/model/architectures.py puts the blocks at "
            f"{spec.blocks!r}, but {type(model).__name__} has {type(blocks).__name__} there. Fix the row's `blocks` path."
        )
    return blocks


def module_at(model: nn.Module, dotted: str) -> Any:
    value: Any = model
    for part in dotted.split("."):
        value = getattr(value, part, None)
    return value


def saved_by_newer(directory: Path) -> str:
    """" (The files were written by transformers 5.24.0 ...)" when config.json names a newer major version than installed; else ""."""
    from harness.model.architectures import transformers_major

    try:
        saved = str(json.loads((directory / "config.json").read_text(encoding="utf-8")).get("transformers_version", ""))
    except (OSError, ValueError, AttributeError):
        return ""
    major = saved.split(".")[0]
    if not major.isdigit() or int(major) <= transformers_major():
        return ""
    from importlib.metadata import version

    return (
        f" (The files were written by transformers {saved}; this is transformers {version('transformers')}, which may not read "
        "them: save the checkpoint again under this version, or install the newer one.)"
    )
