"""A small random checkpoint of a decoder architecture, saved as a directory, to try `--model DIR` offline.

    python scripts/tiny_checkpoint.py llama /tmp/tiny-llama          # 6 blocks, d=64, a BPE tokenizer with a BOS
    python scripts/tiny_checkpoint.py llama /tmp/short --max-positions 256   # a short context: long prompts are left out
    pytest claims/ --model minilm --model random-gpt2 --model /tmp/tiny-llama

The weights are random (seeded): the structural claims C0–C2 are meaningful on it, C3–C6 are not
(they are findings on a model without a section in harness/note/expectations.toml). The tokenizer is a
byte-level BPE of 512 tokens trained on harness/note/prompts.txt, so the corpus has no unknown tokens.
Everything is built from transformers' config classes; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TYPES = ("llama", "mistral", "qwen2", "qwen3", "gemma", "phi3", "gpt_neox")  # share the config names used below
VOCAB = 512


def tokenizer(corpus: Path) -> object:
    """A byte-level BPE trained on `corpus` that starts every prompt with <s>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    lines = [line for line in corpus.read_text(encoding="utf-8-sig").splitlines() if line.strip() and not line.startswith("#")]
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=["<unk>", "<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    core.train_from_iterator(lines, trainer)
    core.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", core.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model_type", choices=TYPES)
    parser.add_argument("out", type=Path, help="directory to write (config.json, model.safetensors, tokenizer files)")
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-positions", type=int, default=2048, help="positions the model reads (default 2048: the whole corpus fits)")
    args = parser.parse_args(argv)
    if args.blocks < 1:
        parser.error(f"--blocks {args.blocks} is not allowed: give at least 1")
    if args.max_positions < 2:
        parser.error(f"--max-positions {args.max_positions} is not allowed: give at least 2")
    if args.out.exists() and any(args.out.iterdir()):
        parser.error(f"{str(args.out)!r} exists and is not empty: give a new directory")

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    tok = tokenizer(ROOT / "harness" / "note" / "prompts.txt")
    config = AutoConfig.for_model(
        args.model_type,
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=args.blocks,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=args.max_positions,  # the corpus's longest prompt is ~1100 of these tokens
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.eos_token_id,
    )
    torch.manual_seed(args.seed)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(args.out)  # safetensors
    tok.save_pretrained(args.out)
    print(f"wrote a random {args.model_type} of {args.blocks} blocks to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
