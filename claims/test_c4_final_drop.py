"""C4 (§3.3, §4): at the last site before the unembedding Δ drops slightly.

Everything particular to C4 (its rule, thresholds, applicability, evidence, figure) is in harness/note/c4_final_drop.py.
"""

from harness.note.c4_final_drop import C4
from harness.suite.checks import claim_tests

test_C4_drop_at_final_block, test_C4_drop_at_final_block_drawn = claim_tests(C4)
