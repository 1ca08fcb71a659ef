"""The research note's claims C0–C6, one module each, with the corpus and the expectations they ship with.

    from harness.note import NOTE_CLAIMS, PROMPTS, EXPECTATIONS
    [c.id for c in NOTE_CLAIMS]       # ["C0", ..., "C6"]
    PROMPTS                          # the default corpus (prompts.txt, installed with the package)
    EXPECTATIONS                     # the expected verdict of each claim per model and layer (expectations.toml)

Each module holds everything particular to its claim: the Claim record (harness.judge.claim) with its
wording, thresholds and their reasons (`thresholds`), applicability, evidence and figure, and the
judge that states its rule once. `spans` names the sites the rules read.
"""

from pathlib import Path

from harness.note.c0_causality import C0
from harness.note.c1_no_change_before import C1
from harness.note.c2_jump_at_layer import C2
from harness.note.c3_growth import C3
from harness.note.c4_final_drop import C4
from harness.note.c5_first_token import C5
from harness.note.c6_predictions import C6

NOTE_CLAIMS = (C0, C1, C2, C3, C4, C5, C6)
CLAIMS = {claim.id: claim for claim in NOTE_CLAIMS}  # the note's claims by id (harness.judge.claim.CLAIMS: every claim made)
PROMPTS = Path(__file__).with_name("prompts.txt")
EXPECTATIONS = Path(__file__).with_name("expectations.toml")

__all__ = ["CLAIMS", "EXPECTATIONS", "NOTE_CLAIMS", "PROMPTS"]
