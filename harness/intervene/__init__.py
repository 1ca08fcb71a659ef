"""Stage 2, intervene: what is done to block L's hidden state during a forward pass.

`kinds` (the kinds as data: formula, strength range, defaults; InterventionSpec; torch-free),
`protocol` (Intervention: the hooks, strengths, positions and components every kind shares) and
`edits` (Scale, ScaleUpdate, Noise, Add, MeanAblate, `build` and `read_direction`).
Nothing is imported here, so `harness.intervene.kinds` loads without the engine.
"""
