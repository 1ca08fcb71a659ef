"""C5 (§3.2): counting the first token makes Δ about ten times larger.

Everything particular to C5 (its rule, thresholds, applicability, evidence, figure) is in harness/note/c5_first_token.py.
"""

from harness.note.c5_first_token import C5
from harness.suite.checks import claim_tests

test_C5_first_token_dominates, test_C5_first_token_dominates_drawn = claim_tests(C5)
