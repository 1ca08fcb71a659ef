"""C3 (§3.1, §4): from the scaled block on Δ keeps increasing, not linearly.

Everything particular to C3 (its rule, thresholds, applicability, evidence, figure) is in harness/note/c3_growth.py.
"""

from harness.note.c3_growth import C3
from harness.suite.checks import claim_tests

test_C3_growth_after_intervention, test_C3_growth_after_intervention_drawn = claim_tests(C3)
