"""Stage 2, intervene: what is done to a block's output during a forward pass.

`scale` holds Scale, the in-place hook that multiplies block i's output by a factor.
"""
