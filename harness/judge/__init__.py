"""Stage 4, judge: a claim's verdict from a Profile, with no torch and no model.

`claim` (the Claim record: one claim, everything particular to it, and the registry of claims),
`verdict` (the decision every claim shares: aggregate and prompt share, interval, fragility, margin),
`bootstrap` (prompt bootstrap intervals), `expectations` (expected verdicts per model and layer) and
`outcome` (the claim outcome record and its JSON). The note's own claims are in harness.note.
"""
