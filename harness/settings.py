"""One settings object for a run, shared by the CLI, the pytest options and the report.

    settings = Settings(model="minilm", layer=2)
    settings = settings.validated()       # raises InputError naming any bad value

The same field names appear as CLI flags (`--model`, `--layer`, ...), pytest options
(`pytest claims/ --model minilm`) with environment fallbacks (`HARNESS_MODEL`, ...), and keys in
the report's header, so a run can always be repeated from what the report prints.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

from harness.errors import InputError

# The note's two factors (§2): "reduce by 50%" and "increase to 150%".
NOTE_FACTORS: tuple[float, ...] = (0.5, 1.5)
# The note's intervention site (§2): transformer block index 2, the third block.
NOTE_LAYER = 2

DTYPES = ("float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda")  # also "cuda:N"

# Environment variables read by the pytest plugin when an option is not given.
ENV_PREFIX = "HARNESS_"


@dataclass(frozen=True)
class Settings:
    model: str = "gpt2"  # subject: "gpt2" (the note's model), "minilm", "random-gpt2", a Hub id or a directory
    device: str = "auto"  # "auto" picks CUDA when present, else CPU
    dtype: str = "float32"  # weights and activations; norms always accumulate in float32
    layer: int = NOTE_LAYER  # block whose output is scaled
    factors: tuple[float, ...] = NOTE_FACTORS  # scaling factors applied to that output
    prompts: Path | None = None  # a text file, one prompt per line; None: the suite's corpus
    include_first_token: bool = False  # the note (§3.2) excludes the first token from Δ
    memory_budget_mb: int = 2048  # activations held at once by `profile`, per chunk of factors
    seed: int = 0  # seeds random-gpt2's weights

    def validated(self) -> Settings:
        """Return self after checking every field; raise InputError naming the first bad one."""
        if not self.model or not self.model.strip():
            raise InputError("model is empty: give a subject name (gpt2, minilm, random-gpt2), a Hub id or a directory.")
        if self.dtype not in DTYPES:
            raise InputError(f"dtype {self.dtype!r} is not supported: choose one of {', '.join(DTYPES)}.")
        if not (self.device in DEVICES or self.device.startswith("cuda:")):
            raise InputError(f"device {self.device!r} is not supported: choose auto, cpu, cuda or cuda:N.")
        if isinstance(self.layer, bool) or not isinstance(self.layer, int) or self.layer < 0:
            raise InputError(f"layer {self.layer!r} is not a block index: give an integer 0 <= layer < the model's block count.")
        for factor in self.factors:
            check_factor(factor)
        if not self.factors:
            raise InputError("no factors given: pass at least one, e.g. --factor 0.5 --factor 1.5.")
        if self.memory_budget_mb < 16:
            raise InputError(f"memory_budget_mb {self.memory_budget_mb} is too small: give at least 16 (MiB).")
        return self

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, object]:
        out = dataclasses.asdict(self)
        out["factors"] = list(self.factors)
        out["prompts"] = str(self.prompts) if self.prompts is not None else None
        return out


def check_factor(value: object) -> float:
    """Return `value` as a float, or raise InputError if it is not a finite number."""
    try:
        factor = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise InputError(f"factor {value!r} is not a number: give a finite real number such as 0.5 or 1.5.") from exc
    if isinstance(value, bool) or not math.isfinite(factor):
        raise InputError(f"factor {value!r} is not allowed: factors must be finite real numbers (not NaN, inf or a bool).")
    return factor
