# ruff: noqa: E501  (HTML lines of the template; wrapping them would change the page)
"""The report page's Jinja2 template: inline CSS, inline SVG plots, no script, no external URL.

Kept as a Python string so the installed package always carries it. Rendered by `render.py` with
autoescape on; `data-*` attributes mark what the tests read back (claim, status, nodeid, margin).
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Claim report: {{ doc.run.get("model", "unknown model") }}</title>
<style>
body { font: 14px/1.45 system-ui, "DejaVu Sans", sans-serif; margin: 0 auto; max-width: 1100px; padding: 1em 1.5em; color: #1f2328; }
h1 { font-size: 1.6em; margin-bottom: .2em; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2em; margin-top: 2em; }
h3 { font-size: 1.05em; margin-bottom: .3em; }
table { border-collapse: collapse; margin: .4em 0 1em; font-size: 12.5px; }
th, td { border: 1px solid #d0d7de; padding: 2px 6px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
dl.run { display: grid; grid-template-columns: max-content 1fr; gap: 2px 1em; margin: .5em 0; }
dl.run dt { font-weight: 600; } dl.run dd { margin: 0; font-family: ui-monospace, monospace; font-size: 12.5px; overflow-wrap: anywhere; }
.status { display: inline-block; padding: 0 .5em; border-radius: 3px; color: #fff; font-weight: 600; white-space: nowrap; }
.st-holds { background: #1a7f37; } .st-refuted { background: #cf222e; } .st-refuted-as-expected { background: #6e7781; }
.st-unexpected-pass { background: #bf8700; } .st-not-applicable { background: #8c959f; } .st-error { background: #8250df; }
.st-not-run { background: #ffffff; color: #57606a; border: 1px dashed #57606a; }
figure { margin: .8em 0; } figcaption { font-size: 12px; color: #57606a; }
svg.plot { max-width: 100%; height: auto; }
.plot-error, .error { color: #cf222e; font-weight: 600; }
.scroll { overflow-x: auto; }
pre { background: #f6f8fa; padding: .5em; overflow-x: auto; font-size: 12px; white-space: pre-wrap; }
.muted { color: #57606a; }
</style>
</head>
<body>
<header id="run">
<h1>Claim report: {{ doc.run.get("model", "unknown model") }}</h1>
<p class="muted">Each claim of the research note, its verdict on this run, and the measurements it rests on.
Δ = ‖H_clean − H_scaled‖_F at every site; see reports/README.md for how to read this page.</p>
{% if header.error %}<p class="error">Run information incomplete: {{ header.error }}</p>{% endif %}
<dl class="run">
{% for key, value in header.rows %}
<dt>{{ key }}</dt><dd data-key="{{ key }}">{{ value | num }}</dd>
{% endfor %}
</dl>
{% if header.settings %}
<details><summary>Settings</summary>
<table><tr><th>setting</th><th>value</th></tr>
{% for key, value in header.settings.items() %}<tr><td>{{ key }}</td><td>{{ value | num }}</td></tr>
{% endfor %}</table></details>
{% endif %}
{% if header.prompts %}
<details><summary>Prompts ({{ header.prompts | length + header.prompts_left_out }})</summary><ol class="prompts">
{% for prompt in header.prompts %}<li>{{ prompt }}</li>
{% endfor %}</ol>{% if header.prompts_left_out %}<p class="muted">… and {{ header.prompts_left_out }} more, in the JSON twin.</p>{% endif %}</details>
{% endif %}
</header>

<section id="session">
<h2>Run</h2>
<p>Exit status: <span data-key="exitstatus">{{ doc.session.get("exitstatus") | num }}</span>.
{% if doc.session.get("note") %}<span class="error">{{ doc.session.note }}</span>{% endif %}
{% if doc.session.get("interrupted") %}<span class="error">The run was interrupted: claims marked "not run" have no outcome.</span>{% endif %}
{% for status, count in doc.session.counts.items() %}<span class="status {{ status | css }}">{{ status }}</span> {{ count }} {% endfor %}</p>
{% for error in doc.session.get("collection_errors", []) %}
<p class="error">Collection error in {{ error.nodeid }}:</p><pre>{{ error.message }}</pre>
{% endfor %}
</section>

<section id="summary">
<h2>Summary</h2>
<table class="summary">
<tr><th>claim</th><th>§</th><th>title</th><th>item</th><th>verdict</th><th>margin</th><th>what the margin measures</th></tr>
{% for claim in claims %}
{% if claim.item_views %}{% for item in claim.item_views %}
<tr data-claim="{{ claim.claim }}" data-nodeid="{{ item.nodeid }}" data-status="{{ item.status }}">
<td><a href="#{{ claim.anchor }}">{{ claim.claim }}</a></td><td>{{ claim.section }}</td><td>{{ claim.title }}</td><td>{{ item.label }}</td>
<td><span class="status {{ item.status | css }}">{{ item.status }}</span></td><td class="num margin">{{ item.get("margin") | num }}</td>
<td>{{ item.get("margin_text", item.message) }}</td></tr>
{% endfor %}{% else %}
<tr data-claim="{{ claim.claim }}" data-status="not run"><td><a href="#{{ claim.anchor }}">{{ claim.claim }}</a></td><td>{{ claim.section }}</td>
<td>{{ claim.title }}</td><td>—</td><td><span class="status st-not-run">not run</span></td><td class="num margin">—</td><td>no test of this claim ran</td></tr>
{% endif %}
{% endfor %}
</table>
</section>

{% for claim in claims %}
<section class="claim" id="{{ claim.anchor }}" data-claim="{{ claim.claim }}" data-status="{{ claim.status }}">
<h2>{{ claim.claim }}: {{ claim.title }} <span class="muted">({{ claim.section }})</span>
<span class="status {{ claim.status | css }}">{{ claim.status }}</span></h2>
<p class="statement">{{ claim.statement }}</p>
<h3>How it is tested</h3>
<p>{{ claim.test }}</p>
{% if claim.thresholds %}<table class="thresholds"><tr><th>threshold</th><th>value</th></tr>
{% for name, value in claim.thresholds.items() %}<tr><td>{{ name }}</td><td class="num">{{ value | num }}</td></tr>
{% endfor %}</table>{% endif %}
<h3>Verdict</h3>
{% if not claim.item_views %}<p><span class="status st-not-run">not run</span> No test of this claim ran in this session.</p>{% endif %}
{% if claim.item_views %}
<div class="scroll"><table class="items">
<tr><th>item</th><th>expected</th><th>verdict</th><th>status</th><th>margin</th><th>reason</th><th>pytest</th></tr>
{% for item in claim.item_views %}
<tr data-nodeid="{{ item.nodeid }}" data-status="{{ item.status }}">
<td title="{{ item.nodeid }}">{{ item.label }}</td><td>{{ item.get("expected", "—") }}</td><td>{{ item.get("verdict", "—") }}</td>
<td><span class="status {{ item.status | css }}">{{ item.status }}</span></td><td class="num margin">{{ item.get("margin") | num }}</td>
<td>{{ item.get("reason", "") }}{% if item.get("margin_text") %}<br><span class="muted">{{ item.margin_text }}</span>{% endif %}
{% if item.get("expectation_reason") %}<br><span class="muted">expected {{ item.expected }}: {{ item.expectation_reason }}</span>{% endif %}</td>
<td>{{ item.pytest_outcome }}</td></tr>
{% endfor %}</table></div>
{% for item in claim.item_views if item.message or item.problems %}
<p class="{{ 'error' if item.status == 'error' else 'muted' }}">{{ item.nodeid }}: {{ item.pytest_outcome }}</p>
{% for problem in item.problems %}<pre>{{ problem }}</pre>{% endfor %}
{% if item.message %}<pre>{{ item.message }}</pre>{% endif %}
{% endfor %}
{% endif %}
{% if claim.figures or claim.tables %}<h3>Evidence</h3>{% endif %}
{% for caption, svg in claim.figures %}
<figure>{{ svg }}<figcaption>{{ caption }}</figcaption></figure>
{% endfor %}
{% for item in claim.item_views if item.facts %}
<table class="evidence" data-nodeid="{{ item.nodeid }}"><caption>Evidence, {{ item.label }}</caption>
{% for name, text in item.facts %}<tr><td>{{ name }}</td><td class="num" data-key="{{ name }}">{{ text }}</td></tr>
{% endfor %}</table>
{% endfor %}
{% for item in claim.item_views if item.get("examples") %}
<h3>Hypothesis examples tried ({{ item.examples | length }})</h3>
<div class="scroll"><table class="examples"><tr><th>factor</th><th>verdict</th><th>status</th><th>margin</th><th>margin text</th></tr>
{% for ex in item.examples %}<tr><td class="num">{{ ex.factor | num }}</td><td>{{ ex.verdict }}</td>
<td><span class="status {{ ex.status | css }}">{{ ex.status }}</span></td><td class="num">{{ ex.margin | num }}</td><td>{{ ex.margin_text }}</td></tr>
{% endfor %}</table></div>
{% endfor %}
{% for table in claim.tables %}
<div class="scroll"><table class="numbers"><caption>{{ table.caption }}</caption>
<tr>{% for column in table.columns %}<th>{{ column }}</th>{% endfor %}</tr>
{% for row in table.rows %}<tr><td>{{ row[0] }}</td>{% for cell in row[1:] %}<td class="num">{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</table></div>
{% endfor %}
</section>
{% endfor %}

{% if doc.unassigned %}
<section id="unassigned">
<h2>Tests under claims/ that name no claim</h2>
<ul>{% for item in doc.unassigned %}<li>{{ item.nodeid }}: {{ item.status }} ({{ item.pytest_outcome }})</li>{% endfor %}</ul>
</section>
{% endif %}
<footer class="muted"><p>Format {{ doc.format }}; the machine-readable twin of this page is the .json file beside it.</p></footer>
</body>
</html>
"""
