"""C6 (§4, derived from the conclusion): scaling block L changes the next-token predictions materially.

Everything particular to C6 (its rule, thresholds, applicability, evidence, figure) is in harness/note/c6_predictions.py.
"""

from harness.note.c6_predictions import C6
from harness.suite.checks import claim_tests

test_C6_predictions_change, test_C6_predictions_change_drawn = claim_tests(C6)
