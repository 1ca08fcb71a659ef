# ruff: noqa: E501  (HTML lines of the template; wrapping them would change the page)
"""The report page's Jinja2 template: inline CSS, inline SVG plots, no script, no external URL.

Kept as a Python string so the installed package always carries it. Rendered by `render.py` with
autoescape on; `data-*` attributes mark what the tests read back (claim, status, nodeid, margin).
Order: the answer first (models, verdict table, one overview figure, layer map), then one section
per claim with one figure and its raw numbers in <details>.
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Claim report: {{ title }}</title>
<style>
body { font: 14px/1.4 system-ui, "DejaVu Sans", sans-serif; margin: 0 auto; max-width: 1150px; padding: .6em 1.5em; color: #1f2328; }
h1 { font-size: 1.45em; margin: .2em 0; }
h2 { font-size: 1.2em; border-bottom: 1px solid #d0d7de; padding-bottom: .15em; margin: 1.6em 0 .4em; }
h3 { font-size: 1em; margin: .8em 0 .3em; }
p { margin: .35em 0; }
table { border-collapse: collapse; margin: .3em 0 .8em; font-size: 12.5px; }
th, td { border: 1px solid #d0d7de; padding: 2px 6px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.matrix { font-size: 13px; width: 100%; }
table.matrix td.cell { min-width: 14em; }
table.matrix .stat { font-variant-numeric: tabular-nums; margin: 0 .4em; }
table.layermap td { text-align: center; min-width: 3.5em; font-variant-numeric: tabular-nums; }
table.layermap th.note { outline: 2px solid #1f2328; }
dl.run { display: grid; grid-template-columns: max-content 1fr; gap: 2px 1em; margin: .5em 0; }
dl.run dt { font-weight: 600; } dl.run dd { margin: 0; font-family: ui-monospace, monospace; font-size: 12.5px; overflow-wrap: anywhere; }
.models { margin: .2em 0; }
.status { display: inline-block; padding: 0 .5em; border-radius: 3px; border: 1px solid #57606a; background: #57606a; color: #fff; font-weight: 600; white-space: nowrap; font-size: 12.5px; }
{% for class, (background, text, border) in status_styles %}.{{ class }} { background: {{ background }}; color: {{ text }}; border-color: {{ border }}; }
{% endfor %}
.st-not-run, .st-not-measured { border-style: dashed; }
.fragile { display: inline-block; padding: 0 .4em; border-radius: 3px; border: 1.5px solid #bf8700; color: #7d4e00; font-weight: 600; font-size: 12px; }
.derived { display: inline-block; padding: 0 .4em; border-radius: 3px; border: 1px solid #8250df; color: #6639ba; font-size: 12px; font-weight: 600; }
figure { margin: .5em 0; } figcaption { font-size: 12px; color: #57606a; }
svg.plot { max-width: 100%; height: auto; }
.plot-error, .error { color: #cf222e; font-weight: 600; }
.scroll { overflow-x: auto; }
pre { background: #f6f8fa; padding: .5em; overflow-x: auto; font-size: 12px; white-space: pre-wrap; }
.muted { color: #57606a; } .small { font-size: 12px; }
details { margin: .3em 0; } summary { cursor: pointer; color: #0969da; }
tr.finding td { color: #57606a; }
</style>
</head>
<body>
<header id="run">
<h1>Claim report: {{ title }}</h1>
{% for m in models %}
<p class="models" data-model="{{ m.get('model', '') }}"><strong>{{ m.get("model", "unknown model") }}</strong>{% if m.get("revision") %} · revision <code>{{ m.revision }}</code>{% endif %}
{% if m.get("architecture") %} · {{ m.architecture }}{% endif %}{% if m.get("blocks") %}, {{ m.blocks }} blocks{% endif %}
{% if m.get("device") %} · {{ m.device }}{% endif %}{% if m.get("dtype") %} {{ m.dtype }}{% endif %}
{% if m.get("layer", doc.run.get("layer")) is not none %} · block {{ m.get("layer", doc.run.get("layer")) }} scaled{% endif %}
{% if m.get("first_token") %}<br><span class="muted small">first token: {{ m.first_token }}</span>{% endif %}
{% if m.get("device_map") %}<br><span class="muted small">placed by accelerate: {{ m.device_map }}</span>{% endif %}
{% if m.get("prompts_left_out_note") %}<br><span class="left-out" data-key="prompts_left_out">{{ m.prompts_left_out_note }}</span>{% endif %}
{% if m.get("error") %}<br><span class="error">could not load: {{ m.error }}</span>{% endif %}</p>
{% endfor %}
<p class="muted small">Each claim of the research note (Δ = ‖H_clean − H_scaled‖_F when one block's output is scaled), its verdict on this run and the numbers it rests on.
{% if doc.run.get("n_prompts") %}{{ doc.run.n_prompts }} prompts{% endif %}{% if doc.run.get("hypothesis_seed") is not none %}, seed {{ doc.run.hypothesis_seed }}{% endif %}. How to read it: reports/README.md.</p>
{% if header.error %}<p class="error">Run information incomplete: {{ header.error }}</p>{% endif %}
<p id="session">Exit status <span data-key="exitstatus">{{ doc.session.get("exitstatus") | num }}</span>:
{% for status, count in counts.statuses.items() %}<span class="status {{ status | css }}">{{ status }}</span> {{ count }} {% endfor %}
· <span class="fragile">fragile</span> <span data-key="fragile">{{ counts.fragile }}</span> <span class="muted small">(95 % interval contains the threshold)</span>
{% if doc.session.get("note") %}<br><span class="error">{{ doc.session.note }}</span>{% endif %}
{% if doc.session.get("interrupted") %}<br><span class="error">The run was interrupted: claims marked "not run" have no outcome.</span>{% endif %}</p>
{% for error in doc.session.get("collection_errors", []) %}
<p class="error">Collection error in {{ error.nodeid }}:</p><pre>{{ error.message }}</pre>
{% endfor %}
<details><summary>Run details: revision, versions, seed, command, settings, prompts</summary>
<dl class="run">
{% for key, value in header.rows %}
<dt>{{ key }}</dt><dd data-key="{{ key }}">{{ value | num }}</dd>
{% endfor %}
</dl>
{% if header.settings %}
<table><tr><th>setting</th><th>value</th></tr>
{% for key, value in header.settings.items() %}<tr><td>{{ key }}</td><td>{{ value | num }}</td></tr>
{% endfor %}</table>
{% endif %}
{% if header.prompts %}
<p>Prompts ({{ header.prompts | length + header.prompts_not_shown }}):</p><ol class="prompts" start="0">
{% for prompt in header.prompts %}<li>{{ prompt }}</li>
{% endfor %}</ol>{% if header.prompts_not_shown %}<p class="muted">… and {{ header.prompts_not_shown }} more, in the JSON twin.</p>{% endif %}
{% endif %}
</details>
</header>

<section id="summary">
<h2>Verdicts</h2>
<div class="scroll"><table class="matrix">
<tr><th>claim</th>{% for model in matrix.models %}<th>{{ model }}</th>{% endfor %}</tr>
{% for row in matrix.rows %}
<tr data-claim="{{ row.claim }}"><td><a href="#{{ row.anchor }}">{{ row.claim }}</a> {{ row.title }} <span class="muted small">{{ row.section }}</span>{% if row.derived %} <span class="derived">derived from the conclusion</span>{% endif %}</td>
{% for cell in row.cells %}
{% if cell %}<td class="cell" data-status="{{ cell.status }}" data-nodeid="{{ cell.nodeid }}" title="{{ cell.title }}"><span class="status {{ cell.status | css }}">{{ cell.status }}</span>{% if cell.fragile %} <span class="fragile">fragile</span>{% endif %}
<span class="stat">{{ cell.text }}</span>{% if cell.label %}<span class="muted small">({{ cell.label }})</span>{% endif %}</td>
{% else %}<td class="cell" data-status="not run"><span class="status st-not-run">not run</span></td>{% endif %}
{% endfor %}</tr>
{% endfor %}
</table></div>
<p class="muted small">Each cell: the verdict, the number its rule compares (over all prompts), its 95 % bootstrap interval over prompts in brackets, what the rule needs,
and in parentheses the test item that decides the verdict (the most serious; ties: the smallest margin). <span class="fragile">fragile</span>: the interval contains the threshold, so other prompts could change the verdict.</p>
{% if corpora %}<p class="corpora error">{{ corpora }}</p>{% endif %}
</section>

{% if overview %}
<section id="overview">
<figure>{{ overview.figure }}<figcaption>{{ overview.caption }}{% if corpora %} {{ corpora }}{% endif %}</figcaption></figure>
<details><summary>Numbers behind the figure</summary>
{% for table in overview.tables %}
<div class="scroll"><table class="overview-numbers"><caption>{{ table.caption }}</caption>
<tr>{% for column in table.columns %}<th>{{ column }}</th>{% endfor %}</tr>
{% for row in table.rows %}<tr><td>{{ row[0] }}</td>{% for cell in row[1:] %}<td class="num">{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</table></div>
{% endfor %}
</details>
</section>
{% endif %}

{% if layer_maps %}
<section id="layer-map">
<h2>Layer map: the claims with the scaled block at each layer</h2>
<p class="muted small">Margin of each claim's rule (green: held, red: missed; darker: further from the threshold, per claim). Expectations hold only at the note's layer (outlined);
the other layers are findings, shown but not failing.</p>
{% for lm in layer_maps %}
<div class="scroll"><table class="layermap" data-model="{{ lm.model }}"><caption>{{ lm.model }}</caption>
<tr><th>claim</th>{% for layer in lm.layers %}<th{% if layer == lm.note_layer or (lm.note_layer is none and layer == doc.run.get("layer")) %} class="note"{% endif %}>block {{ layer }}</th>{% endfor %}</tr>
{% for row in lm.rows %}<tr data-claim="{{ row.claim }}"><th><a href="#claim-{{ row.claim }}">{{ row.claim }}</a></th>
{% for cell in row.cells %}<td style="{{ cell.style }}" title="{{ cell.status }}" data-status="{{ cell.status }}">{{ cell.text }}</td>{% endfor %}</tr>
{% endfor %}</table></div>
{% endfor %}
</section>
{% endif %}

{% if intervention_maps %}
<section id="intervention-map">
<h2>Intervention map: the claims under each intervention at the judged block</h2>
<p class="muted small">Margin of each claim's rule under each kind (green: held, red: missed; darker: further from the threshold, per claim), one clean pass shared.
Expectations hold under the run's --intervention (outlined) and under kinds with their own [model.KIND] section; the others are findings.
What each rule means under each kind is in its section's items.</p>
{% for im in intervention_maps %}
<div class="scroll"><table class="layermap interventionmap" data-model="{{ im.model }}"><caption>{{ im.model }}</caption>
<tr><th>claim</th>{% for kind in im.layers %}<th{% if kind == im.judged %} class="note"{% endif %}>{{ kind }}</th>{% endfor %}</tr>
{% for row in im.rows %}<tr data-claim="{{ row.claim }}"><th><a href="#claim-{{ row.claim }}">{{ row.claim }}</a></th>
{% for cell in row.cells %}<td style="{{ cell.style }}" title="{{ cell.status }}" data-status="{{ cell.status }}">{{ cell.text }}</td>{% endfor %}</tr>
{% endfor %}</table></div>
{% endfor %}
</section>
{% endif %}

{% for claim in claims %}
<section class="claim" id="{{ claim.anchor }}" data-claim="{{ claim.claim }}" data-status="{{ claim.status }}">
<h2>{{ claim.claim }}: {{ claim.title }} <span class="muted">({{ claim.section }})</span>
<span class="status {{ claim.status | css }}">{{ claim.status }}</span>{% if claim.derived %} <span class="derived">derived from the conclusion</span>{% endif %}</h2>
<p class="statement">{{ claim.statement }}</p>
<p><strong>Rule:</strong> {{ claim.test }}
{% if claim.threshold_rows %}<br><span class="thresholds small">{% for name, value in claim.threshold_rows %}<code>{{ name }} = {{ value }}</code>{% if not loop.last %} · {% endif %}{% endfor %}</span>{% endif %}</p>
{% if not claim.item_views %}<p><span class="status st-not-run">not run</span> No test of this claim ran in this session.</p>{% endif %}
{% if claim.item_views %}
<div class="scroll"><table class="items">
<tr><th>item</th><th>status</th><th>statistic [95 % interval]; rule</th><th>margin</th><th>why</th></tr>
{% for item in claim.item_views %}
<tr data-nodeid="{{ item.nodeid }}" data-status="{{ item.status }}" title="{{ item.nodeid }}">
<td>{{ item.label }}</td>
<td><span class="status {{ item.status | css }}">{{ item.status }}</span>{% if item.get("fragile") %} <span class="fragile">fragile</span>{% endif %}</td>
<td class="num">{{ item.statistic_text }}</td><td class="num margin">{{ item.get("margin") | num }}</td>
<td>{{ item.get("reason", "") }}{% if item.get("margin_text") %}<br><span class="muted small">{{ item.margin_text }}</span>{% endif %}
{% if item.get("expectation_reason") %}<br><span class="muted small">expected {{ item.expected }}: {{ item.expectation_reason }}</span>{% endif %}
{% if item.get("under") %}<br><span class="muted small under">under {{ item.intervention }}: {{ item.under }}</span>{% endif %}</td></tr>
{% endfor %}</table></div>
{% for item in claim.item_views if item.message or item.problems %}
<p class="{{ 'error' if item.status == 'error' else 'muted' }}">{{ item.nodeid }}: {{ item.pytest_outcome }}</p>
{% for problem in item.problems %}<pre>{{ problem }}</pre>{% endfor %}
{% if item.message %}<pre>{{ item.message }}</pre>{% endif %}
{% endfor %}
{% endif %}
{% if claim.derived %}<h3>Effect on predictions</h3>{% endif %}
{% for caption, svg in claim.figures %}
<figure>{{ svg }}<figcaption>{{ caption }}</figcaption></figure>
{% endfor %}
{% if claim.item_views or claim.tables %}
<details><summary>Numbers: evidence per item{% if claim.tables %}, Δ per site{% endif %}{% if claim.item_views | selectattr("examples", "defined") | selectattr("examples") | list %}, Hypothesis examples{% endif %}</summary>
{% for item in claim.item_views if item.facts %}
<table class="evidence" data-nodeid="{{ item.nodeid }}"><caption>Evidence, {{ item.label }}</caption>
{% for name, text, whole in item.facts %}<tr><td>{{ name }}</td><td class="num"{% if whole %} data-key="{{ name }}"{% endif %}>{{ text }}</td></tr>
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
</details>
{% endif %}
</section>
{% endfor %}

{% if doc.unassigned %}
<section id="unassigned">
<h2>Tests under claims/ that name no claim</h2>
<ul>{% for item in doc.unassigned %}<li>{{ item.nodeid }}: {{ item.status }} ({{ item.pytest_outcome }})</li>{% endfor %}</ul>
</section>
{% endif %}
<footer class="muted small"><p>Format {{ doc.format }}; the machine-readable twin of this page is the .json file beside it.</p></footer>
</body>
</html>
"""
