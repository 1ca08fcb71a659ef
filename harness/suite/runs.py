"""The models of one claims session: each loaded in its turn, measured, and freed before the next.

    runs = [ModelRun(settings, n) for n, settings in enumerate(per_model_settings)]
    run.load(texts)            # HarnessError when the model cannot load (or the layer/corpus does not fit it)
    run.subject, run.tokens    # while loaded
    run.info                   # what the report's run["models"] holds: describe(), layer, layers, error
    run.release()              # drop the subject and its tensors; CUDA memory back to the allocator's pool

`harness.suite.plugin` keeps the list in `config.stash` and hands each claim test its model through a
session fixture parametrized by model index, so pytest tears a model's fixtures down (and this
releases it) before the next model's first test loads that one.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field

from harness.errors import HarnessError
from harness.settings import Settings, layers_of, max_memory_of


@dataclass
class ModelRun:
    """One model of a session; see the module docstring."""

    settings: Settings  # this model's settings: settings.model is its one name
    index: int  # its place in the command line's models, the order the session measures them in
    subject: object | None = None  # harness.model.Subject while loaded
    tokens: object | None = None  # harness.model.prompts.Tokenized: the corpus on this model's tokenizer
    error: str | None = None  # why it could not load; its tests error with this
    info: dict[str, object] = field(default_factory=dict)  # the report's per-model run info
    tried: bool = False  # load() was called (in this process)
    measurements: object | None = None  # harness.measure.session.Measurements: its one cache, made by the first claim test

    @property
    def model(self) -> str:
        return self.settings.model

    def load(self, texts: list[str]) -> None:
        """Load the subject, check the layers against its blocks, tokenize the corpus; raise HarnessError."""
        from harness.model.prompts import left_out_note, tokenize

        self.tried = True
        try:
            subject = load_subject_for(self.settings)
            subject.check_layer(self.settings.layer)
            check_intervention(subject, self.settings)
            layers = self.map_layers(subject.n_blocks)
            tokens = tokenize(subject, texts)
        except HarnessError as exc:
            self.error = str(exc)
            self.info = {**self._asked(), "error": self.error}
            raise
        self.subject, self.tokens = subject, tokens
        self.info = {
            **subject.describe(),
            "layer": self.settings.layer,
            "layers": layers,
            "intervention": self.settings.intervention,
            "interventions": self.settings.map_interventions() or None,
            "n_prompts": len(tokens.texts),  # measured: the corpus less the prompts left out
            "unknown_tokens": tokens.n_unknown,
            "prompts_left_out": list(tokens.left_out),  # indices in the corpus of prompts longer than the model's positions
            "n_prompts_left_out": len(tokens.left_out),
            "prompts_left_out_note": left_out_note(tokens, subject.name),  # one line, or None when none were left out
        }

    def map_layers(self, n_blocks: int) -> list[int] | None:
        """The layer map's layers on a model of `n_blocks` blocks, the judged layer always among them; None without --layers."""
        if self.settings.layers is None:
            return None
        return sorted({*layers_of(self.settings.layers, n_blocks), self.settings.layer})

    def planned_layers(self) -> list[int] | None:
        """The layer map's layers as known before loading (for test ids); None when unknown or without --layers."""
        if self.settings.layers is None:
            return None
        blocks = getattr(self.subject, "n_blocks", None) or peek_blocks(self.model)
        if blocks is None:
            if self.settings.layers == "all":
                return None
            # an explicit list needs no depth, but a bound: no model has 1024 blocks, and a list past it would make
            # a test id per layer before load() refuses the layer beyond the model's blocks
            blocks = 1 << 10
        try:
            return self.map_layers(blocks)
        except HarnessError:
            return None  # load() says why, as this model's error

    def release(self) -> None:
        """Drop the subject, its tokens and every tensor they hold; on CUDA return the cached blocks."""
        device = str(getattr(self.subject, "device", "cpu"))
        self.subject = self.tokens = self.measurements = None
        gc.collect()
        if device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def _asked(self) -> dict[str, object]:
        return {
            "model": self.model,
            "revision": "not loaded",
            "device": self.settings.device,
            "dtype": self.settings.dtype,
            "layer": self.settings.layer,
        }


def check_intervention(subject: object, settings: Settings) -> None:
    """What the settings' intervention (and each of an intervention map's) needs of this model: its component, add's
    direction of the model's width."""
    from harness.intervene.edits import read_direction
    from harness.intervene.protocol import component_module

    for kind in settings.map_interventions() or [settings.intervention]:
        spec = settings.at_intervention(kind).intervention_spec().validated()
        component_module(subject, settings.layer, spec.component)
        if spec.kind == "add" and spec.direction is not None:
            read_direction(spec.direction, int(subject.model.config.hidden_size))  # type: ignore[attr-defined]


def peek_blocks(model: str) -> int | None:
    """A model's block count from its config alone (no weights), or None when the config cannot be read here."""
    try:
        from transformers import AutoConfig, GPT2Config

        if model == "random-gpt2":
            return int(GPT2Config().n_layer)
        if model == "minilm":
            from harness.model import _minilm_directory

            return int(AutoConfig.from_pretrained(_minilm_directory()).num_hidden_layers)
        return int(AutoConfig.from_pretrained(model, local_files_only=True).num_hidden_layers)
    except Exception:  # any failure here is the loader's to report, with its own message
        return None


def model_in_nodeid(nodeid: str, models: list[str]) -> str | None:
    """Which of `models` a claim test's id names: its parameters start with the model ("...[minilm-0.5]")."""
    params = nodeid.rpartition("[")[2] if nodeid.endswith("]") else ""
    found = [m for m in models if params.startswith(m + "-") or params == m + "]"]
    return max(found, key=len) if found else None


def load_subject_for(settings: Settings):
    """The subject these settings name (harness.model.load_subject with the loader's settings)."""
    from harness.model import load_subject

    return load_subject(
        settings.model,
        device=settings.device,
        dtype=settings.dtype,
        seed=settings.seed,
        prepend_bos=settings.prepend_bos,
        device_map=settings.device_map,
        max_memory=max_memory_of(settings.max_memory) if settings.max_memory else None,
    )
