"""The README states the options and the claims once, from the code: its tables are checked against it.

python -m tests.test_readme      # prints the options table as the README should hold it
"""

from pathlib import Path

from harness.note import CLAIMS
from harness.settings import CLI, PYTEST, options

README = Path(__file__).resolve().parent.parent / "README.md"


def options_rows() -> list[str]:
    """One markdown row per Settings field: setting, flag, CLI, pytest, default, meaning."""
    rows = []
    for o in options():
        default = o.help_text()[len(o.help) :].strip()[len("(default ") : -1]
        cli, pytest_ = ("yes" if CLI in o.where else "no"), ("yes" if PYTEST in o.where else "no")
        rows.append(f"| `{o.name}` | `{o.flag}` | {cli} | {pytest_} | {default} | {o.help} |")
    return rows


def test_the_options_table_is_the_settings():
    text = README.read_text(encoding="utf-8")
    missing = [row for row in options_rows() if row not in text]
    assert not missing, "README's options table differs from harness.settings; regenerate: python -m tests.test_readme\n" + "\n".join(
        missing
    )


def test_every_claim_has_a_row_in_the_claims_table():
    """Each note claim's row starts with its record's id and section (harness/note/, Claim.section)."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index("| id | § | claim (our words) | statistic | judged by |")
    rows = lines[start + 2 : start + 2 + next(n for n, line in enumerate(lines[start + 2 :]) if not line.startswith("|"))]
    for claim in CLAIMS.values():
        row = next((line for line in rows if line.startswith(f"| {claim.id} |")), None)
        assert row is not None, f"README's claims table has no row for {claim.id}"
        section = row.split("|")[2].strip()
        assert section.startswith(claim.section), f"{claim.id}'s row names {section!r}, its record {claim.section!r}"
        assert ("(derived)" in row) == bool(claim.derived), f"{claim.id}'s row and its record differ on whether it is derived"


def test_no_placeholder_left():
    assert "@@" not in README.read_text(encoding="utf-8")


if __name__ == "__main__":
    print("| setting | flag | CLI | pytest | default | meaning |\n| --- | --- | --- | --- | --- | --- |")
    print("\n".join(options_rows()))
