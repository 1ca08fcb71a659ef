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

from importlib import import_module

# Imported on first use, so that `import harness.report.merge` (the CLI's parser) does not load matplotlib.
_WHERE = {
    "ItemResult": "harness.report.outcomes",
    "build_document": "harness.report.outcomes",
    "render_html": "harness.report.render",
    "write_document": "harness.report.write",
    "write_report": "harness.report.write",
}
__all__ = list(_WHERE)


def __getattr__(name: str) -> object:
    if name not in _WHERE:
        raise AttributeError(f"module 'harness.report' has no attribute {name!r}")
    return getattr(import_module(_WHERE[name]), name)
