"""--component attention|mlp on every architecture row, against scaling the weights instead of the states.

Scaling a sub-layer's write by s equals scaling its output projection's weight and bias by s (the
write is that projection's output, plus nothing but eval-mode dropout). So on every row whose write
is its output projection's, the harness's hook is compared with a model whose projection weights
were multiplied by s, no hook at all, to 1e-6 relative (s·(Wx + b) and (sW)x + sb round apart by an
ulp). Gemma 2 adds a norm after each sub-layer: its write is that norm's output, checked against a
plain forward hook of this test on the norm. PROJECTIONS names each row's projections here, apart
from the table, so a wrong row fails.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from harness import load_subject
from harness.errors import InputError
from harness.intervene.edits import Scale
from harness.intervene.protocol import component_module
from harness.model.architectures import ARCHITECTURES
from tests.test_architectures import PROMPTS, TINY, save_tiny

# model_type -> (attention's output projection, MLP's output projection), dotted inside a block;
# None: the write is a post-sub-layer norm's output (see the module docstring)
PROJECTIONS: dict[str, tuple[str, str] | None] = {
    "gpt2": ("attn.c_proj", "mlp.c_proj"),
    "gpt_neo": ("attn.attention.out_proj", "mlp.c_proj"),
    "gpt_neox": ("attention.dense", "mlp.dense_4h_to_h"),
    "gptj": ("attn.out_proj", "mlp.fc_out"),
    "opt": ("self_attn.out_proj", "fc2"),
    "llama": ("self_attn.o_proj", "mlp.down_proj"),
    "mistral": ("self_attn.o_proj", "mlp.down_proj"),
    "qwen2": ("self_attn.o_proj", "mlp.down_proj"),
    "qwen3": ("self_attn.o_proj", "mlp.down_proj"),
    "gemma": ("self_attn.o_proj", "mlp.down_proj"),
    "gemma2": None,
    "phi3": ("self_attn.o_proj", "mlp.down_proj"),
    "bert": ("attention.output.dense", "output.dense"),
    "roberta": ("attention.output.dense", "output.dense"),
    "distilbert": ("attention.out_lin", "ffn.lin2"),
}
POST_NORMS = {"gemma2": ("post_attention_layernorm", "post_feedforward_layernorm")}
LAYER, STRENGTH = 1, 0.6


def test_every_row_has_an_oracle():
    assert set(PROJECTIONS) == set(ARCHITECTURES)


@pytest.fixture(scope="module", params=sorted(TINY))
def subject(request, tmp_path_factory):
    return load_subject(str(save_tiny(request.param, tmp_path_factory.mktemp(request.param))), device="cpu")


def _states(subject, batch) -> list[torch.Tensor]:
    with torch.inference_mode():
        out = subject.model(**batch, output_hidden_states=True)
    return [*out.hidden_states, out.last_hidden_state]


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.norm(a.double() - b.double()) / torch.linalg.norm(b.double()))


@pytest.mark.parametrize("component", ["attention", "mlp"])
def test_scaling_a_write_is_scaling_its_projection(subject, component):
    batch = {k: torch.tensor([v]) for k, v in subject.encode(PROMPTS[0]).items()}
    block = subject.blocks[LAYER]
    clean = _states(subject, batch)
    with Scale(subject, LAYER, STRENGTH, component=component):
        hooked = _states(subject, batch)
    which = 0 if component == "attention" else 1
    row = PROJECTIONS[subject.spec.model_type]
    if row is None:  # a post-sub-layer norm: the test's own hook on it
        norm = block.get_submodule(POST_NORMS[subject.spec.model_type][which])
        handle = norm.register_forward_hook(lambda module, args, output: output * STRENGTH)
        try:
            reference = _states(subject, batch)
        finally:
            handle.remove()
    else:
        projection = block.get_submodule(row[which])
        kept = {name: p.detach().clone() for name, p in projection.named_parameters()}
        try:
            with torch.no_grad():
                for p in projection.parameters():
                    p.mul_(STRENGTH)
            reference = _states(subject, batch)
        finally:
            with torch.no_grad():
                for name, p in projection.named_parameters():
                    p.copy_(kept[name])
    assert torch.equal(_states(subject, batch)[-1], clean[-1]), "weights restored"
    for i, (a, b) in enumerate(zip(hooked, reference, strict=True)):
        if i <= LAYER:
            assert torch.equal(a, clean[i]), f"state {i}, before the layer's output"
        else:
            assert _relative(a, b) <= 1e-6, f"state {i}: {_relative(a, b):.2e}"
    assert _relative(hooked[-1], clean[-1]) > 1e-3  # the write matters: the comparison is not of equal things


def test_a_missing_component_is_refused_in_one_line(subject):
    lacking = dataclasses.replace(subject, spec=dataclasses.replace(subject.spec, mlp=None, attention="no_such_module"))
    with pytest.raises(InputError, match=r"^--component mlp does not exist on .*: no mlp write in its table row; use --component output"):
        component_module(lacking, LAYER, "mlp")
    with pytest.raises(InputError, match=r"^--component attention does not exist on .*: no attention write at \w+\.no_such_module"):
        Scale(lacking, LAYER, 0.5, component="attention")
