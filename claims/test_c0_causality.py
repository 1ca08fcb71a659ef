"""C0 (§1): scaling block n changes every later site and never an earlier one, for every n.

Everything particular to C0 (its rule, thresholds, applicability, evidence, figure) is in harness/note/c0_causality.py.
"""

from harness.note.c0_causality import C0
from harness.suite.checks import claim_tests

test_C0_causality_across_depth, test_C0_causality_across_depth_drawn = claim_tests(C0)
