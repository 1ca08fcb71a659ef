"""Render: the report's document (see `outcomes.build_document`) as one self-contained HTML page.

    html = render_html(doc)      # str: inline CSS and SVG, no script, no external URL

The page answers first: the model(s), then a claim × model verdict table whose cells give the
statistic, its 95 % interval and what the rule needs; then one overview figure, an optional
claim × layer map, and a section per claim with one figure and its numbers folded away.

All text goes through Jinja2 with autoescape on; only the SVG that `plots` draws is inserted as
markup (matplotlib escapes the text inside it). Plots and numbers depend on the document alone, so
two renders of the same results differ only in the header's date and command line.

Keys of newer documents (run["models"], item "model"/"layer", doc["matrix"], doc["layer_map"],
counts["fragile"], C6's "dose_response"/"kl_by_layer") are drawn when present; without them the
page is computed from doc["claims"] alone.
"""

from __future__ import annotations

import math
import re

from jinja2 import Environment, StrictUndefined

from harness.judge import outcome
from harness.report import plots
from harness.report.figures import claim_figure, draw, profiles, who
from harness.report.page import PAGE
from harness.report.text import about, fmt, item_label, rule_bounds, short, statistic_text

# Header fields in the order shown; anything else run info carries follows them.
HEADER_KEYS = (
    "model", "revision", "architecture", "source", "device", "dtype", "layer", "prompts", "n_prompts", "unknown_tokens",
    "hypothesis_profile", "hypothesis_seed", "versions", "date", "command",
)  # fmt: skip
_NOT_SHOWN = {"settings", "prompt_texts", "error", "blocks", "max_length", "models", "prompts_left_out_note"}
# The page shows at most this many prompts, and this many values of a per-prompt list; the JSON keeps all.
SHOWN_VALUES = 50
SHOWN_LIST_VALUES = 12
# How a rule compares its statistic with its threshold, in words (Claim.needs).
NOT_MEASURED = "not measured"  # a layer-map cell without an item
STATUS_STYLES = {
    outcome.ERROR: ("#8250df", "#ffffff", "#8250df"),
    outcome.REFUTED_STATUS: ("#cf222e", "#ffffff", "#cf222e"),
    outcome.UNEXPECTED_PASS: ("#bf8700", "#ffffff", "#bf8700"),
    outcome.NOT_RUN: ("#ffffff", "#57606a", "#57606a"),
    outcome.REFUTED_AS_EXPECTED: ("#6e7781", "#ffffff", "#6e7781"),
    outcome.HOLDS_STATUS: ("#1a7f37", "#ffffff", "#1a7f37"),
    outcome.FINDING_REFUTED: ("#ffebe9", "#a40e26", "#cf222e"),
    outcome.FINDING_HOLDS: ("#dafbe1", "#116329", "#1a7f37"),
    outcome.NOT_APPLICABLE_STATUS: ("#8c959f", "#ffffff", "#8c959f"),
    NOT_MEASURED: ("#ffffff", "#57606a", "#57606a"),
}
# Evidence keys drawn as their own tables or figures, not as rows of the evidence table.
_OWN_TABLES = ("profile", "token_norms", "dose_response", "kl_by_layer")


def render_html(doc: dict) -> str:
    """The page for `doc`; see the module docstring."""
    env = Environment(autoescape=True, undefined=StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = fmt
    env.filters["css"] = css_class
    run = doc.get("run") or {}
    models = _models(run, doc)
    several = len(models) > 1
    return env.from_string(PAGE).render(
        doc=doc,
        status_styles=[(css_class(status), style) for status, style in STATUS_STYLES.items()],
        header=_header(run),
        models=models,
        title=", ".join(str(m.get("model", "unknown model")) for m in models) or "unknown model",
        counts=_counts(doc),
        matrix=_matrix(doc, models),
        corpora=corpora_note(models) if several else None,
        overview=_overview(doc, models),
        layer_maps=_layer_maps(doc.get("layer_map")),
        intervention_maps=_layer_maps(doc.get("intervention_map"), "interventions"),
        claims=[_claim_view(claim, models=models, several=several) for claim in doc["claims"]],
    )


def css_class(status: object) -> str:
    """The badge class of a status: 'finding: holds' -> 'st-finding-holds' (letters, digits and '-' only)."""
    return "st-" + (re.sub(r"[^a-z0-9]+", "-", str(status).lower()).strip("-") or "unknown")


# ---------------------------------------------------------------------------------------------
# The top: models, counts, the verdict matrix


def _models(run: dict, doc: dict) -> list[dict]:
    """Per-model run info: run["models"] where the run lists them, else the run itself (and any other model items name)."""
    listed = run.get("models")
    if isinstance(listed, list) and listed:
        return [m for m in listed if isinstance(m, dict)]
    models = [run] if run.get("model") else []
    seen = {run.get("model")}
    for claim in doc.get("claims", []):
        for item in claim["items"]:
            if item.get("model") and item["model"] not in seen:
                seen.add(item["model"])
                models.append({"model": item["model"]})
    return models or [{"model": run.get("model", "unknown model")}]


def _counts(doc: dict) -> dict:
    counts = dict((doc.get("session") or {}).get("counts") or {})
    fragile = counts.pop("fragile", None)
    if fragile is None:
        fragile = sum(1 for c in doc["claims"] for i in c["items"] if i.get("fragile") is True)
    return {"statuses": counts, "fragile": fragile}


def _note_layer(model: dict, run: dict) -> object:
    return model.get("layer", run.get("layer"))


def corpora_note(models: list[dict]) -> str | None:
    """For tables across models: which models measured fewer prompts (some left out as too long), or None when all measured the same."""
    cut = [m for m in models if m.get("n_prompts_left_out")]
    if not cut:
        return None
    said = "; ".join(
        f"{m.get('model')} measured {m.get('n_prompts')} ({m['n_prompts_left_out']} left out: longer than its positions)" for m in cut
    )
    return f"The models' corpora differ: {said}; the others measured every prompt. Compare their numbers with that in mind."


def _matrix(doc: dict, models: list[dict]) -> dict:
    """Rows: claims; columns: models; a cell per (claim, model): the item that decides its status."""
    names = [str(m.get("model")) for m in models]
    items = {i["nodeid"]: (c, i) for c in doc["claims"] for i in c["items"]}
    given = doc.get("matrix")
    cells: dict[tuple[str, str], dict] = {}
    if isinstance(given, dict) and given.get("cells"):
        names = [str(m) for m in given.get("models") or names]
        for cell in given["cells"]:
            claim, item = items.get(cell.get("nodeid"), (None, {}))
            cells[(str(cell.get("model")), cell.get("claim"))] = _cell_view(cell, item)
    else:
        run = doc.get("run") or {}
        for claim in doc["claims"]:
            for model in models:
                layer = _note_layer(model, run)
                group = [i for i in claim["items"] if _model_of(i, models) == model.get("model") and i.get("layer") in (None, layer)]
                if group:
                    deciding = _deciding(claim, group)
                    cells[(str(model.get("model")), claim["claim"])] = _cell_view(deciding, deciding)
    rows = []
    for claim in doc["claims"]:
        cid = claim["claim"]
        rows.append(
            {
                "claim": cid,
                "title": claim.get("title", ""),
                "section": claim.get("section", ""),
                "anchor": f"claim-{cid}",
                "derived": bool(about(claim, "derived")),
                "cells": [cells.get((name, cid)) for name in names],
            }
        )
    return {"models": names, "rows": rows}


def _model_of(item: dict, models: list[dict]) -> object:
    return item.get("model") or models[0].get("model")


def _deciding(claim: dict, group: list[dict]) -> dict:
    """The item whose status is the group's (the most serious); ties: the smallest margin. As a matrix cell."""
    status = min((i["status"] for i in group), key=lambda s: outcome.STATUSES.index(s) if s in outcome.STATUSES else 0)
    tied = [i for i in group if i["status"] == status]
    item = min(tied, key=lambda i: i["margin"] if isinstance(i.get("margin"), int | float) else math.inf)
    return {**item, "claim": claim["claim"], "statistic_name": about(claim, "statistic_name") or "", "needs": about(claim, "needs") or ""}


def _cell_view(cell: dict, item: dict) -> dict:
    """A verdict-table cell: status, the statistic in words, fragile, and a link to the item."""
    evidence = item.get("evidence") if isinstance(item.get("evidence"), dict) else {}
    name = evidence.get("statistic_is") or cell.get("statistic_name") or item.get("statistic_name") or ""  # C0 says which side
    needs = cell.get("needs") or item.get("needs") or ""
    layer = item.get("layer", cell.get("layer"))
    if isinstance(layer, int):
        name = name.replace("block L", f"block {layer}").replace("blocks L…", f"blocks {layer}…")
    bounds = evidence.get("threshold_bounds") or rule_bounds(needs, item.get("thresholds") or {})
    statistic = cell.get("statistic")
    if statistic is None and cell.get("status") in ("not applicable", "error", "not run"):
        text = item.get("reason") or item.get("message") or ""
    else:
        text = statistic_text(name, statistic, cell.get("ci95"), cell.get("threshold"), needs, bounds)
    return {
        "status": cell.get("status", "not run"),
        "text": text,
        "fragile": cell.get("fragile") is True,
        "nodeid": cell.get("nodeid", ""),
        "label": item_label(item) if item else "",
        "title": item.get("margin_text", ""),
    }


# ---------------------------------------------------------------------------------------------
# The overview figure and the layer map


def _overview(doc: dict, models: list[dict]) -> dict | None:
    """Δ by site for the note's factors, each model's profile at its note's layer (factors merged)."""
    run = doc.get("run") or {}
    series, tables = [], []
    several = len(models) > 1
    for model in models:
        layer = _note_layer(model, run)
        items = [
            i for c in doc["claims"] for i in c["items"] if _model_of(i, models) == model.get("model") and i.get("layer") in (None, layer)
        ]
        found = profiles(items)
        if not found:
            continue
        label, prof = found[0]
        tables += _profile_tables(label, prof)
        sites = prof["sites"]
        blocks = model.get("blocks") or sum(1 for s in sites if s.startswith("block."))
        at = f"block.{prof.get('layer')}"
        if several:  # relative depth: block i at i / N, the final norm at 1; the embedding is left out
            keep = [k for k, s in enumerate(sites) if s.startswith("block.") or s == "final_norm"]
            x = [int(sites[k][6:]) / blocks if sites[k].startswith("block.") else 1.0 for k in keep]
            layer_x = int(at[6:]) / blocks if at in sites else None
        else:
            keep, x = list(range(len(sites))), list(range(len(sites)))
            layer_x = sites.index(at) if at in sites else None
        for f, factor in enumerate(prof["factors"]):
            series.append(
                {
                    "label": f"{model.get('model')}, factor {factor:g}" if several else f"factor {factor:g}",
                    "model": str(model.get("model")),
                    "factor": factor,
                    "x": x,
                    "sites": sites,
                    "layer_x": layer_x,
                    "delta": [prof["delta"][f][k] for k in keep],
                    "delta_all_tokens": [prof.get("delta_all_tokens", prof["delta"])[f][k] for k in keep],
                }
            )
    if not series:
        return None
    caption = (
        "Δ = ‖H_clean − H_scaled‖_F at every site for the note's factors, first token excluded (left) and included (right)"
        + (
            "; models overlaid against relative depth (block index / number of blocks), dotted: each model's scaled block"
            if several
            else "; dotted: the scaled block"
        )
        + ". Before the scaled block Δ is exactly 0, which a log scale leaves out."
    )
    return {"figure": draw(lambda: plots.overview(series, relative_depth=several, key="overview")), "caption": caption, "tables": tables}


def _layer_maps(layer_map: object, axis: str = "layers") -> list[dict]:
    """doc["layer_map"] as coloured tables: per claim (rows) and layer (columns) the margin, green held, red missed.
    With axis="interventions", doc["intervention_map"]: the columns are intervention kinds."""
    if not isinstance(layer_map, dict):
        return []
    out = []
    for model, data in layer_map.items():
        layers, claims = data.get(axis) or [], data.get("claims") or []
        rows = []
        for c, cid in enumerate(claims):
            margins = (data.get("margin") or [[]])[c] if c < len(data.get("margin") or []) else []
            statuses = (data.get("status") or [[]])[c] if c < len(data.get("status") or []) else []
            scale = max((abs(m) for m in margins if isinstance(m, int | float) and math.isfinite(m)), default=0.0) or 1.0
            cells = []
            for k, _layer in enumerate(layers):
                margin = margins[k] if k < len(margins) else None
                status = statuses[k] if k < len(statuses) else None
                cells.append({"text": short(margin), "status": status or NOT_MEASURED, "style": _margin_colour(margin, scale)})
            rows.append({"claim": cid, "cells": cells})
        out.append({"model": model, "layers": layers, "note_layer": data.get("note_layer"), "judged": data.get("judged"), "rows": rows})
    return out


def _margin_colour(margin: object, scale: float) -> str:
    if not isinstance(margin, int | float) or isinstance(margin, bool) or not math.isfinite(margin):
        return "background: #f6f8fa"
    strength = 0.15 + 0.6 * min(abs(margin) / scale, 1.0)
    colour = "26, 127, 55" if margin > 0 else "207, 34, 46"
    return f"background: rgba({colour}, {strength:.2f})"


# ---------------------------------------------------------------------------------------------
# A claim's section


def _header(run: dict) -> dict:
    rows = [(key, run[key]) for key in HEADER_KEYS if key in run]
    rows += [(key, value) for key, value in run.items() if key not in HEADER_KEYS and key not in _NOT_SHOWN]
    prompts = list(run.get("prompt_texts") or [])
    return {
        "rows": rows,
        "settings": run.get("settings") or {},
        "prompts": prompts[:SHOWN_VALUES],
        "prompts_not_shown": max(0, len(prompts) - SHOWN_VALUES),
        "error": run.get("error"),
    }


def _claim_view(claim: dict, models: list[dict] | None = None, several: bool = False) -> dict:
    cid = claim["claim"]
    items = claim["items"]
    models = models or [{"model": next((i.get("model") for i in items if i.get("model")), None)}]
    thresholds = next((i["thresholds"] for i in items if isinstance(i.get("thresholds"), dict) and i["thresholds"]), {})
    dtype = next((m.get("dtype") for m in models if m.get("dtype")), "float32")
    tables: list[dict] = []
    for label, prof in profiles(items):
        tables += _profile_tables(label, prof)
    norms = _token_norm_table(items)
    if norms:
        tables.append(norms)
    for item in items:
        ev = item.get("evidence")
        if isinstance(ev, dict) and "layers" in ev and "delta" in ev:
            tables.append(_matrix_table(ev))
        tables += _prediction_tables(item)
    layered = len({i.get("layer") for i in items if isinstance(i.get("layer"), int)}) > 1  # a layer map: say each row's block
    figure = claim_figure(claim, items, thresholds, dtype, several, layered)
    return {
        **claim,
        "anchor": f"claim-{cid}",
        "thresholds": thresholds,
        "threshold_rows": [(name, _threshold_value(value, dtype)) for name, value in thresholds.items()],
        "derived": bool(about(claim, "derived")),
        "statistic_name": about(claim, "statistic_name") or "",
        "item_views": [_item_view(i, claim, several, layered) for i in items],
        "figures": [figure] if figure else [],
        "tables": tables,
    }


def _threshold_value(value: object, dtype: str) -> str:
    if isinstance(value, dict) and dtype in value:  # ZERO_RELATIVE: per dtype
        return f"{fmt(value[dtype])} ({dtype})"
    return fmt(value)


def _item_view(item: dict, claim: dict, several: bool, layered: bool = False) -> dict:
    label = who(item, several, layered) + item_label(item)
    needs = about(claim, "needs") or ""
    evidence = item.get("evidence") if isinstance(item.get("evidence"), dict) else {}
    bounds = evidence.get("threshold_bounds") or rule_bounds(needs, item.get("thresholds") or {})
    has_statistic = item.get("statistic") is not None
    return {
        **item,
        "label": label,
        "statistic_text": statistic_text(
            "", item.get("statistic"), item.get("ci95"), item.get("threshold"), needs, bounds
        )
        if has_statistic
        else "—",
        "facts": _evidence_rows(evidence),
    }


# ---------------------------------------------------------------------------------------------
# Numbers for the details


def _profile_tables(label: str, prof: dict) -> list[dict]:
    """Δ, relative Δ and Δ with the first token per site and factor; the prediction measures where the profile has them."""
    factors = prof["factors"]
    columns = ["site", "‖H_clean‖"]
    for f in factors:
        columns += [f"Δ ({fmt(f)})", f"relative Δ ({fmt(f)})", f"Δ with first token ({fmt(f)})"]
    rows = []
    for s, site in enumerate(prof["sites"]):
        row = [site, fmt(prof["clean_norm"][s])]
        for f in range(len(factors)):
            row += [fmt(prof["delta"][f][s]), fmt(prof["relative_delta"][f][s]), fmt(prof["delta_all_tokens"][f][s])]
        rows.append(row)
    out = [{"caption": f"Numbers, {label}", "columns": columns, "rows": rows}]
    measures = [k for k in ("kl", "top1_agreement", "nll_change") if isinstance(prof.get(k), list) and len(prof[k]) == len(factors)]
    if measures:  # one value per factor (the subject's LM head)
        out.append(
            {
                "caption": f"Effect on predictions, {label}",
                "columns": ["factor", *measures],
                "rows": [[fmt(f), *(fmt(prof[k][n]) for k in measures)] for n, f in enumerate(factors)],
            }
        )
    return out


def _prediction_tables(item: dict) -> list[dict]:
    ev = item.get("evidence")
    if not isinstance(ev, dict):
        return []
    out = []
    dose = ev.get("dose_response")
    if isinstance(dose, dict) and dose.get("factors"):
        keys = [k for k in ("kl", "top1_agreement", "nll_change") if isinstance(dose.get(k), list)]
        out.append(
            {
                "caption": f"Dose response, {item_label(item)}",
                "columns": ["factor", *keys],
                "rows": [[fmt(f), *(fmt(dose[k][n]) if n < len(dose[k]) else "—" for k in keys)] for n, f in enumerate(dose["factors"])],
            }
        )
    by_layer = ev.get("kl_by_layer")
    if isinstance(by_layer, dict) and by_layer.get("layers"):
        out.append(
            {
                "caption": f"KL by scaled block, factor {fmt(by_layer.get('factor'))}, {item_label(item)}",
                "columns": ["scaled block", "KL"],
                "rows": [[fmt(n), fmt(k)] for n, k in zip(by_layer["layers"], by_layer.get("kl") or [], strict=False)],
            }
        )
    return out


def _token_norm_table(items: list[dict]) -> dict | None:
    """C5's explanation (§3.2): the first token's clean norm against the other tokens', per site."""
    norms = next(
        (i["evidence"]["token_norms"] for i in items if isinstance(i.get("evidence"), dict) and "token_norms" in i["evidence"]), None
    )
    if not isinstance(norms, dict):
        return None
    rows = []
    for site, first, other in zip(norms["sites"], norms["first_token_norm"], norms["other_token_norm"], strict=False):
        ratio = float(first) / float(other) if isinstance(first, int | float) and isinstance(other, int | float) and other else None
        rows.append([site, fmt(first), fmt(other), fmt(ratio)])
    return {
        "caption": "First token's norm against the other tokens' (clean run, mean L2 norm per token)",
        "columns": ["site", "first token ‖h‖", "other tokens ‖h‖", "ratio"],
        "rows": rows,
    }


def _matrix_table(ev: dict) -> dict:
    rows = [[f"block {n}", *(fmt(v) for v in row)] for n, row in zip(ev["layers"], ev["delta"], strict=False)]
    return {"caption": f"Δ by scaled block × site, factor {fmt(ev.get('factor'))}", "columns": ["scaled", *ev["sites"]], "rows": rows}


def _evidence_rows(evidence: object) -> list[tuple[str, str, bool]]:
    """The claim-specific evidence as (name, text, whole); the profile and the C0 matrix have their own tables.

    whole: the text is the whole value (fmt of it); long lists show their first values only.
    """
    if not isinstance(evidence, dict):
        return []
    rows = []
    for key, value in evidence.items():
        if key in _OWN_TABLES or (key == "delta" and "layers" in evidence):
            continue
        if isinstance(value, list) and len(value) > SHOWN_LIST_VALUES:  # per-prompt lists: the JSON has them all
            rows.append((key, f"{fmt(value[:SHOWN_LIST_VALUES])}, … ({len(value)} values; all in the JSON twin)", False))
            continue
        if key == "readings" and isinstance(value, dict):
            for name, reading in value.items():
                rows.append((f"{key}.{name}", fmt(reading), True))
            continue
        rows.append((key, fmt(value), True))
    return rows
