"""The README states the options and the claims once, from the code: its tables are checked against it.

python -m tests.test_readme      # prints the options table as the README should hold it
"""

from pathlib import Path

from harness.judge.judgement import CLAIMS
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
    lines = README.read_text(encoding="utf-8").splitlines()
    for claim in CLAIMS:
        assert any(line.startswith(f"| {claim} |") for line in lines), f"README's claims table has no row for {claim}"


def test_no_placeholder_left():
    assert "@@" not in README.read_text(encoding="utf-8")


if __name__ == "__main__":
    print("| setting | flag | CLI | pytest | default | meaning |\n| --- | --- | --- | --- | --- | --- |")
    print("\n".join(options_rows()))
