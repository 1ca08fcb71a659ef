"""Stage 4, judge: a claim's verdict from a Profile, with no torch and no model.

`judgement` (the claims and their rules), `bootstrap` (prompt bootstrap intervals), `expectations`
(expected verdicts per model and layer) and `outcome` (the claim outcome record and its JSON).
"""
