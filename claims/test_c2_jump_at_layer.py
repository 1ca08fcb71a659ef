"""C2 (§3.1): at the scaled block Δ jumps from about zero to a large value.

Everything particular to C2 (its rule, thresholds, applicability, evidence, figure) is in harness/note/c2_jump_at_layer.py.
"""

from harness.note.c2_jump_at_layer import C2
from harness.suite.checks import claim_tests

test_C2_jump_at_layer, test_C2_jump_at_layer_drawn = claim_tests(C2)
