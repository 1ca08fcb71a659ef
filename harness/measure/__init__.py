"""Stage 3, measure: clean and intervened passes over a corpus, reduced to a Profile.

`capture` (Capture: read every site), `norms` (Δ, token masks, norms; pure), `predictions` (KL,
top-1 agreement, NLL change; pure), `replay` (the later blocks alone, for reuse_prefix), `sweep`
(profile(), CleanPass, the memory budget) and `record` (the Profile record, plain numpy, no torch).
Nothing is imported here, so `harness.measure.record` loads without the engine.
"""
