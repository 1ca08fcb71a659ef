"""The claim report: one self-contained HTML page per run, and its JSON twin.

    pytest claims/                       # writes reports/claims.html and reports/claims.json
    pytest claims/ --report out/r.html   # writes out/r.html and out/r.json
    pytest claims/ --no-report

    from harness.report import write_report
    write_report(outcomes, run_info, Path("reports/claims.html"))

Modules, in the order data flows: `collect` (pytest hooks gather each claim test's outcome),
`outcomes` (the document: every claim, its items and statuses), `plots` (inline SVG), `render`
and `page` (the HTML), `write` (atomic files). `sample` builds outcomes from real measurements
without pytest, for demos and the report's own tests.
"""

from harness.report.outcomes import ItemResult, build_document
from harness.report.render import render_html
from harness.report.write import write_document, write_report

__all__ = ["ItemResult", "build_document", "render_html", "write_document", "write_report"]
