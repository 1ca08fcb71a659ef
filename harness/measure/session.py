"""Measurements: one model's clean passes and profiles for a whole session, made once and shared.

    m = Measurements(subject, tokens, settings)       # nothing runs yet
    run = m.at(settings)                               # the view a claim judges through (its layer, seed, dtype)
    run.profile(2, (0.5,))                             # Δ with block 2 scaled by 0.5, per prompt; cached
    run.profile(2, (0.5,), predictions=True)           # from the clean pass with predictions (the LM head)
    run.profile(3, (1.5,), prompts=8)                  # on the corpus's first 8 prompts (C0)

The factors a claim asks for are the note's (0.5, 1.5, drawn in [0.5, 1.5]); under another
--intervention (the run's settings name it) the profile measures that kind's strength for each,
`Kind.from_note(f)`, and its `factors` say which.

One cache per model: every claim, every layer of a layer map and the report's sample read the same
profiles. A clean pass is made on first use for each corpus (the whole corpus, or its first N
prompts) and kind (hidden states, or with predictions), then shared by every profile over it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from harness.intervene.kinds import InterventionSpec
from harness.measure.record import Profile
from harness.settings import Settings

Progress = Callable[[str], Callable[[int, int], None] | None]  # label -> a sweep's progress callback, or None


@dataclass
class Measurements:
    """One model's measurements for the session; see the module docstring."""

    subject: object  # harness.model.Subject
    tokens: object  # harness.model.prompts.Tokenized: the corpus on this model's tokenizer
    settings: Settings  # the model's settings (memory budget, factor batch, include_first_token)
    progress: Progress | None = None  # where the main clean pass and its profiles report progress
    cleans: dict[tuple[bool, int | None], object] = field(default_factory=dict)  # (predictions, prompts) -> CleanPass
    profiles: dict[tuple, Profile] = field(default_factory=dict)  # (layer, factors, predictions, prompts, intervention) -> Profile

    def at(self, settings: Settings) -> Run:
        """The view for one test: these settings' layer and seed, this model's cache."""
        return Run(self, settings)

    def clean(self, *, predictions: bool = False, prompts: int | None = None) -> object:
        """The clean pass over the corpus (or its first `prompts`), with predictions or not; made once."""
        from harness.measure.clean import CleanPass

        key = (bool(predictions), prompts)
        if key not in self.cleans:
            tokens = self.tokens if prompts is None else list(self.tokens.texts)[:prompts]
            main = key == (False, None) and self.progress is not None
            progress = self.progress(f"clean pass of {self.settings.model}") if main else None
            self.cleans[key] = CleanPass(
                self.subject, tokens, self.settings.memory_budget_mb, predictions=bool(predictions), progress=progress
            )
        return self.cleans[key]

    def profile(
        self,
        layer: int,
        factors: Sequence[float],
        *,
        predictions: bool = False,
        prompts: int | None = None,
        intervention: InterventionSpec | None = None,
    ) -> Profile:
        """Δ (and, with predictions, KL, top-1 agreement, NLL change) per prompt with block `layer` intervened on
        at the note's `factors` (default intervention: the settings'); cached."""
        from harness.measure.sweep import profile

        spec = intervention if intervention is not None else self.settings.intervention_spec()
        strengths = tuple(spec.kind_row.from_note(f) for f in factors)
        key = (layer, strengths, bool(predictions), prompts, spec)
        if key not in self.profiles:
            options: dict[str, object] = {}
            if predictions:
                options = {"predictions": True, "include_first_token": self.settings.include_first_token}
            elif prompts is None and self.progress is not None:
                label = f"{self.settings.model}, block {layer}, {spec.label()} {', '.join(f'{s:g}' for s in strengths)}"
                options = {"progress": self.progress(label)}
            self.profiles[key] = profile(
                self.subject,
                None,
                layer,
                list(strengths),
                per_prompt=True,
                clean=self.clean(predictions=predictions, prompts=prompts),
                memory_budget_mb=self.settings.memory_budget_mb,
                factor_batch=self.settings.factor_batch,
                intervention=spec,
                **options,
            )
        return self.profiles[key]


@dataclass(frozen=True)
class Run:
    """What a claim's measure and judge see: the model's measurements at one test's settings."""

    measurements: Measurements
    settings: Settings

    @property
    def subject(self) -> object:
        return self.measurements.subject

    @property
    def layer(self) -> int:
        return self.settings.layer

    @property
    def seed(self) -> int:
        """The run's seed, for the bootstrap intervals: the same seed gives the same interval."""
        return self.settings.seed

    @property
    def dtype(self) -> str:
        """The subject's resolved dtype name ('float32', ...), which sets C0's and C1's noise limit."""
        return self.measurements.subject.dtype_name

    @property
    def intervention(self) -> InterventionSpec:
        """The intervention this test judges under (the settings' --intervention, --positions, --component)."""
        return self.settings.intervention_spec()

    def profile(self, layer: int, factors: Sequence[float], *, predictions: bool = False, prompts: int | None = None) -> Profile:
        return self.measurements.profile(layer, factors, predictions=predictions, prompts=prompts, intervention=self.intervention)

    def replace(self, **changes: object) -> Run:
        return dataclasses.replace(self, settings=self.settings.replace(**changes))
