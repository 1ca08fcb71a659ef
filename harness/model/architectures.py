"""Architectures: one declarative row per HuggingFace `model_type`, read by the one loader.

    spec = architecture_for("llama", model="./tiny-llama")   # the row, or a SubjectLoadError
    spec.blocks, spec.final_norm                              # "layers", "norm" (dotted, on the base model)
    spec.flag(config, "pre_norm")                             # True / False, from the row or the config

`attention` and `mlp` name, inside a block, the modules whose outputs are those sub-layers' writes
into the residual stream (`--component`): the attention module itself where its output projection
is its last step, the output projection where a post-LN block adds it before a norm (BERT's
`attention.output.dense`), the post-sub-layer norm where there is one (Gemma 2). Parallel-residual
blocks (GPT-J, Pythia) sum both writes into the block's input: each is still its module's output.

Every architecture names the same sites: `embed` (the input of block 0), `block.i` (block i's raw
output) and `final_norm` (the final norm's output) where the checkpoint has one. A row says where
those modules live on the base model (what `AutoModel` returns) and the facts that change what a
site means. Adding an architecture is one row here plus its tiny config in
tests/test_architectures.py, which checks the row against the model's own `output_hidden_states`.

Rows name modules as transformers 5 does; `v4_paths` lists the paths transformers 4 spells
otherwise (GPT-NeoX's head is `lm_head` in 5, `embed_out` in 4), and `spec.at(path)` gives the path
under the installed version. Block outputs differ too (a Tensor in 5, a tuple in 4): harness.sites.

HuggingFace's `output_hidden_states` for N blocks has N+1 entries, and `hf_entries` names them:
decoders replace the last block's output by the final norm's (so the last entry is post-norm and
the raw `block.N-1` is not among them); encoders without a final norm list every block output.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib.metadata import version

from harness.errors import SubjectLoadError


@dataclass(frozen=True)
class Tolerated:
    """Weight keys whose absence (or presence) in a checkpoint is allowed, and why."""

    key_pattern: str  # regular expression, searched in the key as the loader reports it
    missing: bool  # True: may be missing from the checkpoint; False: may be unexpected in it
    reason: str


# Old checkpoints store causal-mask and rotary buffers that current code recomputes at init;
# loading them would change nothing, dropping them changes nothing either.
_CAUSAL_MASK = Tolerated(r"\.(attn|attention)(\.attention)?\.(bias|masked_bias)$", False, "a causal-mask buffer, rebuilt at init")
_ROTARY = Tolerated(r"rotary_emb\.inv_freq$", False, "rotary frequencies, recomputed from the config at init")
_POOLER = Tolerated(r"^(\w+\.)?pooler\.", True, "masked-LM checkpoints carry no pooler; the pooled output is never a site")
_POOLER_KEPT = Tolerated(r"^(\w+\.)?pooler\.", False, "a base checkpoint's pooler, absent from the masked-LM model; never a site")


@dataclass(frozen=True)
class Architecture:
    """One row of the table; see the module docstring. `bool | str` fields name a config attribute when a str."""

    model_type: str  # HuggingFace config.model_type
    family: str  # checkpoints of this type, in words
    kind: str  # "decoder" (causal LM) or "encoder" (masked LM)
    base_prefix: str  # attribute holding the base model in *ForCausalLM / *ForMaskedLM (the model loaded)
    blocks: str  # dotted path of the ModuleList of blocks on the base model
    final_norm: str | None  # dotted path of the final norm; None: the architecture has none
    pre_norm: bool | str  # norm before attention/MLP (pre-LN) or after the residual add (post-LN)
    norm_kind: str  # "LayerNorm" or "RMSNorm"
    parallel_residual: bool | str  # attention and MLP read the same block input and are summed
    first_token: str  # what its usual tokenizer puts first: "none", "BOS <tok>", "CLS <tok>" (the loader measures it)
    embed: str  # what the `embed` site holds on this architecture
    # dotted paths inside a block of the modules whose outputs are the attention and the MLP writes
    # into the residual stream (after a post-sub-layer norm where there is one); None: no such write
    attention: str | None
    mlp: str | None
    after_final_norm: str | None = None  # a module inside the base model applied after the final norm
    positions_reserved: int = 0  # position ids the model uses up before the first token (RoBERTa: 2)
    head: tuple[str, ...] = ("lm_head",)  # modules of the *ForCausalLM / *ForMaskedLM model after the base, in order
    logit_softcap: str | None = None  # config attribute of a final logit soft-capping (Gemma 2); None: none
    tolerated: tuple[Tolerated, ...] = ()
    quirks: str = ""
    v4_paths: tuple[tuple[str, str], ...] = ()  # (path in transformers 5, the same module's path in transformers 4)

    def at(self, path: str) -> str:
        """`path` (as the row writes it, transformers 5's name) as the installed transformers names it."""
        if transformers_major() < 5:
            return dict(self.v4_paths).get(path, path)
        return path

    def flag(self, config: object, name: str) -> bool:
        """A `bool | str` field resolved: the row's value, or the config attribute it names."""
        value = getattr(self, name)
        return bool(getattr(config, value)) if isinstance(value, str) else value

    def hf_entries(self, n_blocks: int, has_final_norm: bool, has_after: bool) -> tuple[str, ...]:
        """The site behind each of HuggingFace's `output_hidden_states` entries (N+1 of them).

        Decoders: the last entry is the base model's output, i.e. after the final norm and after
        `after_final_norm` (OPT's project_out); encoders: every block's output.
        """
        names = ["embed"] + [f"block.{i}" for i in range(n_blocks)]
        if self.kind == "encoder":
            return tuple(names)
        last = "final_norm" if has_final_norm else f"block.{n_blocks - 1}"
        if has_after:
            last = f"{self.after_final_norm}({last})"
        return (*names[:-1], last)


_LEARNED = "token embeddings + learned position embeddings"
_ROTARY_EMBED = "token embeddings only (rotary positions act inside attention)"
_SCALED = "token embeddings × sqrt(d_model): Gemma scales before block 0, so `embed` is after the scaling"
_ENCODER = "token + position (+ segment) embeddings after the embedding LayerNorm"

# One row per model_type. Keywords name every field; `bool | str` fields may name a config attribute.
# fmt: off
ARCHITECTURES: dict[str, Architecture] = {row.model_type: row for row in (
    Architecture(model_type="gpt2", family="GPT-2 (every size), DistilGPT-2", kind="decoder", base_prefix="transformer",
                 blocks="h", final_norm="ln_f", pre_norm=True, norm_kind="LayerNorm", parallel_residual=False,
                 first_token="none", attention="attn", mlp="mlp", embed=_LEARNED, tolerated=(_CAUSAL_MASK,)),
    Architecture(model_type="gpt_neo", family="GPT-Neo", kind="decoder", base_prefix="transformer",
                 blocks="h", final_norm="ln_f", pre_norm=True, norm_kind="LayerNorm", parallel_residual=False,
                 first_token="none", attention="attn", mlp="mlp", embed=_LEARNED, tolerated=(_CAUSAL_MASK,),
                 quirks="alternating global and local (windowed) attention"),
    Architecture(model_type="gpt_neox", family="GPT-NeoX, Pythia", kind="decoder", base_prefix="gpt_neox",
                 blocks="layers", final_norm="final_layer_norm", pre_norm=True, norm_kind="LayerNorm",
                 parallel_residual="use_parallel_residual", first_token="none", attention="attention", mlp="mlp", embed=_ROTARY_EMBED,
                 tolerated=(_CAUSAL_MASK, _ROTARY), quirks="parallel residual (Pythia): x + attn(ln1(x)) + mlp(ln2(x))",
                 v4_paths=(("lm_head", "embed_out"),)),
    Architecture(model_type="gptj", family="GPT-J", kind="decoder", base_prefix="transformer",
                 blocks="h", final_norm="ln_f", pre_norm=True, norm_kind="LayerNorm", parallel_residual=True,
                 first_token="none", attention="attn", mlp="mlp", embed=_ROTARY_EMBED, tolerated=(_CAUSAL_MASK,),
                 quirks="parallel residual with one shared norm: x + attn(ln_1(x)) + mlp(ln_1(x))"),
    Architecture(model_type="opt", family="OPT", kind="decoder", base_prefix="model",
                 blocks="decoder.layers", final_norm="decoder.final_layer_norm", pre_norm="do_layer_norm_before",
                 norm_kind="LayerNorm", parallel_residual=False, first_token="BOS </s>",
                 attention="self_attn", mlp="fc2", embed=_LEARNED + "; OPT-350m: project_in(token embeddings) + positions",
                 after_final_norm="decoder.project_out",
                 quirks="OPT-350m is post-LN with no final norm, and projects between 512-wide embeddings and "
                        "1024-wide blocks (project_in / project_out): the sites stay in the blocks' width"),
    Architecture(model_type="llama", family="Llama 2/3, TinyLlama, SmolLM", kind="decoder", base_prefix="model",
                 blocks="layers", final_norm="norm", pre_norm=True, norm_kind="RMSNorm", parallel_residual=False,
                 first_token="BOS <s> / <|begin_of_text|>", attention="self_attn", mlp="mlp", embed=_ROTARY_EMBED, tolerated=(_ROTARY,)),
    Architecture(model_type="mistral", family="Mistral", kind="decoder", base_prefix="model",
                 blocks="layers", final_norm="norm", pre_norm=True, norm_kind="RMSNorm", parallel_residual=False,
                 first_token="BOS <s>", attention="self_attn", mlp="mlp", embed=_ROTARY_EMBED, tolerated=(_ROTARY,),
                 quirks="sliding-window attention on long prompts"),
    Architecture(model_type="qwen2", family="Qwen2, Qwen2.5", kind="decoder", base_prefix="model",
                 blocks="layers", final_norm="norm", pre_norm=True, norm_kind="RMSNorm", parallel_residual=False,
                 first_token="none", attention="self_attn", mlp="mlp", embed=_ROTARY_EMBED, tolerated=(_ROTARY,)),
    Architecture(model_type="qwen3", family="Qwen3", kind="decoder", base_prefix="model",
                 blocks="layers", final_norm="norm", pre_norm=True, norm_kind="RMSNorm", parallel_residual=False,
                 first_token="none", attention="self_attn", mlp="mlp", embed=_ROTARY_EMBED, tolerated=(_ROTARY,),
                 quirks="RMSNorm on queries and keys inside attention"),
    Architecture(model_type="gemma", family="Gemma", kind="decoder", base_prefix="model",
                 blocks="layers", final_norm="norm", pre_norm=True, norm_kind="RMSNorm", parallel_residual=False,
                 first_token="BOS <bos>", attention="self_attn", mlp="mlp", embed=_SCALED, tolerated=(_ROTARY,),
                 quirks="scaled embeddings; RMSNorm weights act as (1 + w)"),
    Architecture(model_type="gemma2", family="Gemma 2", kind="decoder", base_prefix="model",
                 blocks="layers", final_norm="norm", pre_norm=True, norm_kind="RMSNorm", parallel_residual=False,
                 first_token="BOS <bos>", attention="post_attention_layernorm", mlp="post_feedforward_layernorm",
                 embed=_SCALED, tolerated=(_ROTARY,), logit_softcap="final_logit_softcapping",
                 quirks="scaled embeddings; sandwich norms (before and after attention and MLP); alternating "
                        "local/global attention; logit soft-capping acts on the LM head only"),
    Architecture(model_type="phi3", family="Phi-3, Phi-3.5, Phi-4-mini", kind="decoder", base_prefix="model",
                 blocks="layers", final_norm="norm", pre_norm=True, norm_kind="RMSNorm", parallel_residual=False,
                 first_token="none", attention="self_attn", mlp="mlp", embed=_ROTARY_EMBED, tolerated=(_ROTARY,),
                 quirks="fused qkv and gate_up projections"),
    Architecture(model_type="bert", family="BERT, MiniLM (all-MiniLM-L6-v2)", kind="encoder", base_prefix="bert",
                 blocks="encoder.layer", final_norm=None, pre_norm=False, norm_kind="LayerNorm", parallel_residual=False,
                 first_token="CLS [CLS]", attention="attention.output.dense", mlp="output.dense", embed=_ENCODER,
                 tolerated=(_POOLER, _POOLER_KEPT),
                 head=("cls",), quirks="post-LN: every block ends in a LayerNorm, so there is no final norm"),
    Architecture(model_type="roberta", family="RoBERTa", kind="encoder", base_prefix="roberta",
                 blocks="encoder.layer", final_norm=None, pre_norm=False, norm_kind="LayerNorm", parallel_residual=False,
                 first_token="CLS <s>", attention="attention.output.dense", mlp="output.dense", embed=_ENCODER,
                 positions_reserved=2, tolerated=(_POOLER, _POOLER_KEPT),
                 quirks="post-LN; positions start after the padding index, so 2 of max_position_embeddings are unusable"),
    Architecture(model_type="distilbert", family="DistilBERT", kind="encoder", base_prefix="distilbert",
                 blocks="transformer.layer", final_norm=None, pre_norm=False, norm_kind="LayerNorm", parallel_residual=False,
                 first_token="CLS [CLS]", attention="attention", mlp="ffn", embed=_ENCODER,
                 head=("vocab_transform", "activation", "vocab_layer_norm", "vocab_projector"),
                 quirks="post-LN; no segment embeddings (token_type_ids)"),
)}
# fmt: on


@functools.cache
def transformers_major() -> int:
    """The installed transformers' major version (4 or 5), read from its package metadata without importing it."""
    return int(version("transformers").split(".")[0])


def architecture_for(model_type: object, model: str, where: str = "config.json") -> Architecture:
    """The row for `model_type`, or one SubjectLoadError naming the supported types and where to add one."""
    if isinstance(model_type, str) and model_type in ARCHITECTURES:
        return ARCHITECTURES[model_type]
    raise SubjectLoadError(
        f"Cannot load model {model!r}: its architecture (model_type {model_type!r} in {where}) is not supported. "
        f"Supported model types: {', '.join(sorted(ARCHITECTURES))}. "
        "To add one, write its row in ARCHITECTURES in harness/model/architectures.py (where its blocks and final norm "
        "live, pre- or post-norm, its first token) and its tiny config in tests/test_architectures.py."
    )
