"""Profile: Δ per factor and site over a prompt set, as plain numpy data (no torch, no model).

    prof = harness.profile(subject, prompts, layer=2, factors=[0.5, 1.5])   # made by harness.measure.sweep
    prof.sites                       # ("embed", "block.0", ..., "final_norm")
    prof.delta[f, s]                 # Δ for factor (strength) f at site s, first token excluded (§3.2)
    prof.intervention                # "scale" (the note's), "noise", ...: see harness.intervene.kinds
    prof.delta_all_tokens[f, s]      # the same with the first token included
    prof.clean_norm[s]               # ‖H_clean‖ over the same tokens, for relative Δ
    prof.kl[f], prof.top1_agreement[f], prof.nll_change[f]   # effect on predictions (profile(..., predictions=True))
    same = Profile.from_dict(json.loads(json.dumps(prof.to_dict())))        # the JSON round trip

Judging a profile (harness.judge) needs only this module, so it never imports the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from harness.errors import InputError


@dataclass(frozen=True)
class Profile:
    """Δ per factor and site over a prompt set; arrays are float64 numpy. See the module docstring."""

    model: str
    revision: str
    layer: int
    sites: tuple[str, ...]
    factors: tuple[float, ...]
    prompt_lengths: tuple[int, ...]  # tokens per prompt, in the order given
    delta: np.ndarray  # (F, S) first token excluded
    delta_all_tokens: np.ndarray  # (F, S) first token included
    clean_norm: np.ndarray  # (S,) first token excluded
    clean_norm_all_tokens: np.ndarray  # (S,)
    first_token_norm: np.ndarray  # (S,) mean L2 norm of the first token of each prompt (clean)
    other_token_norm: np.ndarray  # (S,) mean L2 norm of the other tokens (clean)
    # per prompt, in the order given; None unless per_prompt=True
    prompt_delta: np.ndarray | None = field(default=None, repr=False)  # (F, S, P)
    prompt_delta_all_tokens: np.ndarray | None = field(default=None, repr=False)  # (F, S, P)
    prompt_clean_norm: np.ndarray | None = field(default=None, repr=False)  # (S, P)
    # how the numbers were made: sites before `layer` are 0 by construction (not measured) with
    # reuse_prefix; factor_batch > 1 stacks factors, so Δ there carries batch-shape rounding
    reuse_prefix: bool = False
    factor_batch: int | None = 1
    # the intervention (harness.intervene.kinds): its kind, the tokens and the state of block `layer` it edits,
    # and add's direction file's sha256; `factors` are its strengths
    intervention: str = "scale"
    positions: str = "all"
    component: str = "output"
    direction_sha256: str | None = None
    # effect on the next-token predictions (harness.measure.predictions); None unless profile(..., predictions=True)
    kl: np.ndarray | None = None  # (F,) mean KL(p_clean ‖ p_scaled) over the counted positions, nats
    top1_agreement: np.ndarray | None = None  # (F,) share of counted positions whose argmax is unchanged
    nll_change: np.ndarray | None = None  # (F,) mean NLL_scaled − NLL_clean of the next token, nats/token; None for a masked LM
    prompt_kl: np.ndarray | None = field(default=None, repr=False)  # (F, P), NaN for a prompt with no counted position
    prompt_top1_agreement: np.ndarray | None = field(default=None, repr=False)  # (F, P)
    prompt_nll_change: np.ndarray | None = field(default=None, repr=False)  # (F, P)
    prediction_positions: np.ndarray | None = field(default=None, repr=False)  # (P,) positions counted for kl and top1
    next_token_positions: np.ndarray | None = field(default=None, repr=False)  # (P,) positions counted for nll_change
    predictions_include_first: bool | None = None  # whether each prompt's first token counted; None: not measured

    @property
    def relative_delta(self) -> np.ndarray:
        """(F, S) Δ / ‖H_clean‖, first token excluded."""
        return relative(self.delta, self.clean_norm)

    @property
    def relative_delta_all_tokens(self) -> np.ndarray:
        """(F, S) Δ / ‖H_clean‖, first token included."""
        return relative(self.delta_all_tokens, self.clean_norm_all_tokens)

    def site(self, name: str) -> int:
        """Index of site `name` along the S axis: prof.delta[:, prof.site("block.2")]."""
        if name not in self.sites:
            raise InputError(f"site {name!r} is not in this profile: choose one of {', '.join(self.sites)}.")
        return self.sites.index(name)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: lists of floats, keyed as in the CLI's --json output (relative Δ added for readers)."""
        out: dict[str, object] = {key: _plain(getattr(self, key)) for key in _SCALARS + _ARRAYS}
        out["relative_delta"] = self.relative_delta.tolist()
        out["relative_delta_all_tokens"] = self.relative_delta_all_tokens.tolist()
        if self.prompt_delta is not None:
            out.update({key: _plain(getattr(self, key)) for key in _PER_PROMPT})
        out["predictions_include_first"] = self.predictions_include_first
        out.update({key: _nan_as_none(getattr(self, key)) for key in _PREDICTIONS})  # None when not measured
        out.update({key: _nan_as_none(getattr(self, key)) for key in _PREDICTIONS_EXTRA if getattr(self, key) is not None})
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Profile:
        """The inverse of to_dict (derived keys such as relative_delta are recomputed, not read)."""
        missing = [key for key in _SCALARS + _ARRAYS if key not in data and key not in _OPTIONAL_SCALARS]
        if missing:
            raise InputError(f"profile data lacks {', '.join(missing)}: give a dict made by Profile.to_dict().")
        fields: dict[str, object] = {key: data[key] for key in _SCALARS if key in data}
        fields["sites"] = tuple(str(s) for s in data["sites"])  # type: ignore[attr-defined]
        fields["factors"] = tuple(float(f) for f in data["factors"])  # type: ignore[attr-defined]
        fields["prompt_lengths"] = tuple(int(n) for n in data["prompt_lengths"])  # type: ignore[attr-defined]
        arrays = [key for key in _ARRAYS + _PER_PROMPT + _PREDICTIONS + _PREDICTIONS_EXTRA if data.get(key) is not None]
        fields.update({key: np.asarray(data[key], dtype=np.float64) for key in arrays})  # None inside -> NaN
        if data.get("predictions_include_first") is not None:
            fields["predictions_include_first"] = bool(data["predictions_include_first"])
        return cls(**fields)  # type: ignore[arg-type]


# to_dict's keys, in order; from_dict reads the same ones
_INTERVENTION = ("intervention", "positions", "component", "direction_sha256")
_SCALARS = ("model", "revision", "layer", "sites", "factors", "prompt_lengths", "reuse_prefix", "factor_batch", *_INTERVENTION)
_OPTIONAL_SCALARS = ("reuse_prefix", "factor_batch", *_INTERVENTION)  # older JSON lacks them: the defaults apply
_ARRAYS = ("delta", "delta_all_tokens", "clean_norm", "clean_norm_all_tokens", "first_token_norm", "other_token_norm")
_PER_PROMPT = ("prompt_delta", "prompt_delta_all_tokens", "prompt_clean_norm")
_PREDICTIONS = ("kl", "top1_agreement", "nll_change")  # always in to_dict, None when not measured
_PREDICTIONS_EXTRA = ("prompt_kl", "prompt_top1_agreement", "prompt_nll_change", "prediction_positions", "next_token_positions")


def relative(delta: np.ndarray, clean_norm: np.ndarray) -> np.ndarray:
    """Δ / ‖H_clean‖ per site, 0 where the clean norm is 0. Broadcasts (F, S) over (S,)."""
    clean = np.asarray(clean_norm, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(clean > 0, np.asarray(delta, dtype=np.float64) / np.where(clean > 0, clean, 1.0), 0.0)


def _nan_as_none(value: np.ndarray | None) -> object:
    """A float array as nested lists with NaN (a prompt without a counted position) as None: JSON has no NaN."""
    if value is None:
        return None
    array = np.asarray(value, dtype=np.float64)
    return [_nan_as_none(row) for row in array] if array.ndim > 1 else [float(v) if np.isfinite(v) else None for v in array]


def _plain(value: object) -> object:
    """JSON-ready form of one field: arrays and tuples become lists."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    return list(value) if isinstance(value, tuple) else value
