"""C1 (§3.1): before the scaled block Δ is essentially zero.

Everything particular to C1 (its rule, thresholds, applicability, evidence, figure) is in harness/note/c1_no_change_before.py.
"""

from harness.note.c1_no_change_before import C1
from harness.suite.checks import claim_tests

test_C1_no_change_before_layer, test_C1_no_change_before_layer_drawn = claim_tests(C1)
