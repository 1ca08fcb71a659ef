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

import json
import math
import re
from collections.abc import Callable

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup

from harness.judge import outcome
from harness.report import plots
from harness.report.page import PAGE

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
NEEDS = {"<=": "≤", ">=": "≥", ">": ">", "<": "<"}
# Each status's badge as (background, text, border), drawn with the class css_class(status). Judged statuses are
# solid; findings (measured, never failing) are pale with their verdict's colour, so they read apart from a judgement.
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


def fmt(value: object) -> str:
    """A number as the report prints it (the tests compare the HTML to the JSON through this)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {fmt(v)}" for k, v in value.items())
    return str(value)


def short(value: object, digits: int = 3) -> str:
    """A number to `digits` significant digits, for the verdict table (the exact value is in the JSON and the details)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return fmt(value)
    if value == 0 or not math.isfinite(value):
        return fmt(value)
    if abs(value) < 1e-3 or abs(value) >= 1e5:
        return f"{value:.{digits - 1}g}"
    return f"{value:#.{digits}g}".rstrip(".")


def statistic_text(name: str, statistic: object, ci95: object, threshold: object, needs: str, bounds: list | None = None) -> str:
    """'median ratio = 7.80 [6.90, 8.60]; needs ≥ 10': the statistic, its 95 % interval and the rule, in words.

    Digits: 3 significant, up to 5 where fewer would print different values of the statistic and its interval alike.
    """
    values = [statistic, *(ci95 if isinstance(ci95, list | tuple) and len(ci95) == 2 else [])]
    numeric = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    digits = next((d for d in (3, 4, 5) if len({short(v, d) for v in numeric}) == len(set(numeric))), 3)
    text = f"{name} = {short(statistic, digits)}" if name else short(statistic, digits)
    if len(values) == 3:
        text += f" [{short(values[1], digits)}, {short(values[2], digits)}]"
    if needs == "within" and bounds and len(bounds) == 2:
        low, high = sorted(bounds, key=lambda b: float(b) if isinstance(b, int | float) else 0.0)
        return text + f"; needs {_plain(low)} < x ≤ {_plain(high)}"
    if threshold is not None and needs:
        return text + f"; needs {NEEDS.get(needs, needs)} {_plain(threshold)}"
    return text


def _plain(value: object) -> str:
    """A threshold as written in harness/note/thresholds.py: 10, 0.05, 1e-05."""
    return f"{value:.3g}" if isinstance(value, float) else fmt(value)


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
                "derived": bool(_about(claim, "derived")),
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
    return {**item, "claim": claim["claim"], "statistic_name": _about(claim, "statistic_name") or "", "needs": _about(claim, "needs") or ""}


def _cell_view(cell: dict, item: dict) -> dict:
    """A verdict-table cell: status, the statistic in words, fragile, and a link to the item."""
    evidence = item.get("evidence") if isinstance(item.get("evidence"), dict) else {}
    name = evidence.get("statistic_is") or cell.get("statistic_name") or item.get("statistic_name") or ""  # C0 says which side
    needs = cell.get("needs") or item.get("needs") or ""
    layer = item.get("layer", cell.get("layer"))
    if isinstance(layer, int):
        name = name.replace("block L", f"block {layer}").replace("blocks L…", f"blocks {layer}…")
    bounds = evidence.get("threshold_bounds") or _rule_bounds(needs, item.get("thresholds") or {})
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
        "label": _item_label(item) if item else "",
        "title": item.get("margin_text", ""),
    }


def _about(claim: dict, key: str) -> object:
    """A field of a claim's record as the document carries it; a document written before it did: the record known here."""
    if key in claim:
        return claim[key]
    from harness.judge.claim import CLAIMS
    from harness.note import NOTE_CLAIMS  # noqa: F401 - registers the note's claims

    known = CLAIMS.get(str(claim.get("claim")))
    return getattr(known, {"statistic_name": "statistic"}.get(key, key), "") if known is not None else ""


def _rule_bounds(needs: str, thresholds: dict) -> list | None:
    """A "within" rule's two bounds (its first two thresholds, Claim.thresholds' order) when the evidence does not list them."""
    values = [v for name, v in thresholds.items() if name != "PROMPT_SHARE"]
    return values[:2] if needs == "within" and len(values) >= 2 else None


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
        found = _profiles(items)
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
    return {"figure": _draw(lambda: plots.overview(series, relative_depth=several, key="overview")), "caption": caption, "tables": tables}


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
    for label, prof in _profiles(items):
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
    figure = _claim_figure(claim, items, thresholds, dtype, several, layered)
    return {
        **claim,
        "anchor": f"claim-{cid}",
        "thresholds": thresholds,
        "threshold_rows": [(name, _threshold_value(value, dtype)) for name, value in thresholds.items()],
        "derived": bool(_about(claim, "derived")),
        "statistic_name": _about(claim, "statistic_name") or "",
        "item_views": [_item_view(i, claim, several, layered) for i in items],
        "figures": [figure] if figure else [],
        "tables": tables,
    }


def _threshold_value(value: object, dtype: str) -> str:
    if isinstance(value, dict) and dtype in value:  # ZERO_RELATIVE: per dtype
        return f"{fmt(value[dtype])} ({dtype})"
    return fmt(value)


def _item_view(item: dict, claim: dict, several: bool, layered: bool = False) -> dict:
    label = _who(item, several, layered) + _item_label(item)
    needs = _about(claim, "needs") or ""
    evidence = item.get("evidence") if isinstance(item.get("evidence"), dict) else {}
    bounds = evidence.get("threshold_bounds") or _rule_bounds(needs, item.get("thresholds") or {})
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


def _draw(draw: Callable[[], str]) -> Markup:
    try:
        return Markup(draw())
    except Exception as exc:  # a plot must not cost the report: show why it is missing
        return Markup("<p class='plot-error'>{}</p>").format(f"plot failed: {type(exc).__name__}: {exc}")


def _claim_figure(
    claim: dict, items: list[dict], thresholds: dict, dtype: str, several: bool, layered: bool = False
) -> tuple[str, Markup] | None:
    """The one figure that makes a claim's point (its record's `figure`), as (caption, svg), or None when its data is absent."""
    cid, figure, needs_rule = claim["claim"], _about(claim, "figure") or "", _about(claim, "needs") or ""
    measured = [i for i in items if isinstance(i.get("evidence"), dict)]
    if figure == "near_layer":
        return _near_layer_figure(cid, needs_rule, measured, thresholds, dtype, several, layered)
    if figure == "prompt_distribution":
        groups = [
            {
                "label": _group_label(i, several, layered),
                "values": i["evidence"]["prompt_statistic"],
                "statistic": i.get("statistic"),
                "ci95": i.get("ci95"),
            }
            for i in measured
            if "prompt_statistic" in i["evidence"]
        ]
        if not groups:
            return None
        name = _about(claim, "statistic_name") or "statistic"
        bounds = (
            _rule_bounds(needs_rule, thresholds)
            if needs_rule == "within"
            else [next((i.get("threshold") for i in measured if i.get("threshold") is not None), None)]
        )
        needs = "allowed band" if needs_rule == "within" else f"needs {NEEDS.get(needs_rule, '')} {short(bounds[0])}"
        caption = (
            f"{name[0].upper() + name[1:]}, prompt by prompt, for each item: dots are prompts, the box their quartiles, "
            "the diamond the statistic over all prompts with its 95 % interval"
        )
        return caption, _draw(lambda: plots.prompt_distribution(groups, bounds=bounds, xlabel=name, needs=needs, key=f"{cid}-prompts"))
    if figure == "first_token_by_length":
        return _c5_figure(measured, thresholds, several, layered)
    if figure == "predictions":
        return _c6_figure(measured, several)
    c0 = [i for i in measured if "layers" in i["evidence"] and "delta" in i["evidence"]]
    if figure == "causality_heatmap" and c0:
        ev = c0[0]["evidence"]
        caption = f"Intervention layer × site, factor {fmt(ev.get('factor'))}" + (f", {c0[0].get('model')}" if several else "")
        return caption, _draw(lambda: plots.c0_heatmap(ev["layers"], ev["sites"], ev["delta"], key=f"{cid}-c0"))
    return None


def _group_label(item: dict, several: bool, layered: bool = False) -> str:
    label = _item_label(item) if item.get("source") != "hypothesis" else "hypothesis (closest example)"
    return _who(item, several, layered) + label


def _who(item: dict, several: bool, layered: bool) -> str:
    """What tells an item's row apart from its claim's others: 'minilm, ' with several models, 'block 3, ' in a layer map."""
    parts = [str(item["model"])] if several and item.get("model") else []
    if layered and isinstance(item.get("layer"), int):
        parts.append(f"block {item['layer']}")
    return "".join(f"{p}, " for p in parts)


def _near_layer_figure(
    cid: str, needs: str, items: list[dict], thresholds: dict, dtype: str, several: bool, layered: bool = False
) -> tuple[str, Markup] | None:
    """Relative Δ from the embedding to one site past the scaled block, with the rule's first threshold: a limit
    the sites before must stay under (needs "<=", C1), or a level the scaled block must reach (C2)."""
    series, labels = [], []
    offsets = several or layered  # sites counted from each profile's own scaled block
    for label, prof in _profiles(items):
        at = prof["sites"].index(f"block.{prof['layer']}") if f"block.{prof.get('layer')}" in prof["sites"] else None
        if at is None:
            continue
        end = min(at + 2, len(prof["sites"]))
        labels.append(label)
        for f, factor in enumerate(prof["factors"]):
            values = prof["relative_delta"][f][:end]
            x = [k - at for k in range(end)] if offsets else list(range(end))
            name = _who({"model": prof.get("model"), "layer": prof.get("layer")}, several, layered) + f"factor {factor:g}"
            series.append({"label": name, "sites": prof["sites"][:end], "x": x, "values": values, "layer_x": 0 if offsets else at})
    if not series:
        return None
    limit_name, limit = next(iter(thresholds.items()), ("threshold", None))
    limit = limit.get(dtype) if isinstance(limit, dict) else limit
    caption = f"Δ against site up to the scaled block, as relative Δ, {'; '.join(labels)}: " + (
        "every site before the scaled block must stay at or under the dashed line"
        if needs == "<="
        else "the scaled block must reach the dashed line"
    )
    svg = _draw(lambda: plots.near_layer(series, threshold=limit, threshold_name=limit_name, offsets=offsets, key=f"{cid}-near"))
    return caption, svg


def _c5_figure(items: list[dict], thresholds: dict, several: bool, layered: bool = False) -> tuple[str, Markup] | None:
    series, predicted = [], []
    for item in items:
        ev = item["evidence"]
        judged = ev.get("prompt_statistic", ev.get("prompt_ratio"))
        if item.get("source") == "hypothesis" or not isinstance(judged, list) or len(judged) != len(ev.get("prompt_lengths") or ()):
            continue  # the Hypothesis item repeats a factor's points; a list of another length is not per prompt
        name = str(item.get("model")) if several else "predicted"
        first = name not in [p["label"] for p in predicted]  # the at-layer points once per model: the curve describes them
        at_layer = ev.get("prompt_ratio_at_layer") if first and len(ev.get("prompt_ratio_at_layer") or ()) == len(judged) else None
        lengths, judged_shown, at_layer = _sampled(ev["prompt_lengths"], judged, at_layer)
        series.append({"label": _group_label(item, several, layered), "lengths": lengths, "judged": judged_shown, "at_layer": at_layer})
        if ev.get("predicted_lengths") and name not in [p["label"] for p in predicted]:
            predicted.append(
                {
                    "label": name,
                    "lengths": ev["predicted_lengths"],
                    "ratio": ev["predicted_ratio"],
                    "crossing": ev.get("predicted_crossing_length"),
                }
            )
    if not series:
        return None
    ratio = thresholds.get("FIRST_TOKEN_RATIO")
    caption = (
        "First-token ratio against prompt length, one point per prompt; the solid curve is predicted from the first and "
        "other tokens' norms at the scaled block, the dotted line marks where it falls to FIRST_TOKEN_RATIO"
    )
    return caption, _draw(lambda: plots.first_token_by_length(series, predicted=predicted, threshold=ratio, key="C5-length"))


def _c6_figure(items: list[dict], several: bool) -> tuple[str, Markup] | None:
    dose, by_layer = [], []
    for item in items:
        ev = item["evidence"]
        name = str(item.get("model")) if several else "all prompts"
        if isinstance(ev.get("dose_response"), dict) and name not in [d["label"] for d in dose]:
            dose.append({"label": name, **{k: ev["dose_response"].get(k) or [] for k in ("factors", "kl", "top1_agreement")}})
        if isinstance(ev.get("kl_by_layer"), dict) and name not in [d["label"] for d in by_layer]:
            by_layer.append({"label": name, **{k: ev["kl_by_layer"].get(k) for k in ("layers", "kl", "factor")}})
    if not dose:
        return None
    caption = (
        "Effect on predictions: KL from the clean next-token distribution and top-1 agreement against the factor "
        "(1: no scaling), and KL against the scaled block"
    )
    return caption, _draw(lambda: plots.predictions(dose, by_layer, key="C6-predictions"))


# ---------------------------------------------------------------------------------------------
# Numbers for the details


def _profiles(items: list[dict]) -> list[tuple[str, dict]]:
    """The profiles behind a claim's items, one per measurement setup, each factor once, factors in order.

    The suite measures each factor separately; profiles that differ only in their factors are
    merged here so one plot shows every factor.
    """
    groups: dict[str, tuple[list[str], list[dict]]] = {}
    for item in items:
        evidence = item.get("evidence")
        prof = evidence.get("profile") if isinstance(evidence, dict) else None
        if not isinstance(prof, dict) or "delta" not in prof or "factors" not in prof:
            continue
        setup = json.dumps({k: v for k, v in prof.items() if k not in _PER_FACTOR and k != "factors"}, sort_keys=True)
        labels, profs = groups.setdefault(setup, ([], []))
        labels.append(_item_label(item))
        profs.append(prof)
    return [(f"{p.get('model', '?')}, block {p.get('layer', '?')} scaled ({', '.join(labels)})", p) for labels, p in _merged(groups)]


_PER_FACTOR = (
    "delta", "delta_all_tokens", "relative_delta", "relative_delta_all_tokens", "prompt_delta", "prompt_delta_all_tokens",
    "kl", "top1_agreement", "nll_change",
)  # fmt: skip


def _merged(groups: dict[str, tuple[list[str], list[dict]]]) -> list[tuple[list[str], dict]]:
    out = []
    for labels, profs in groups.values():
        rows: dict[float, dict[str, object]] = {}
        for prof in profs:
            for f, factor in enumerate(prof["factors"]):
                rows.setdefault(factor, {k: prof[k][f] for k in _PER_FACTOR if isinstance(prof.get(k), list) and len(prof[k]) > f})
        merged = {**profs[0], "factors": sorted(rows, key=float)}
        for key in _PER_FACTOR:
            if all(key in row for row in rows.values()):
                merged[key] = [rows[factor][key] for factor in merged["factors"]]
        out.append((labels, merged))
    return out


def _item_label(item: dict) -> str:
    if item.get("source") == "hypothesis":
        label = "hypothesis"
    elif item.get("factor") is not None:
        label = f"factor {fmt(item['factor'])}"
    else:
        label = item.get("nodeid", "?").rsplit("::", 1)[-1]
    kind = item.get("intervention") or "scale"
    return label if kind == "scale" else f"{kind}, {label}"


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
                "caption": f"Dose response, {_item_label(item)}",
                "columns": ["factor", *keys],
                "rows": [[fmt(f), *(fmt(dose[k][n]) if n < len(dose[k]) else "—" for k in keys)] for n, f in enumerate(dose["factors"])],
            }
        )
    by_layer = ev.get("kl_by_layer")
    if isinstance(by_layer, dict) and by_layer.get("layers"):
        out.append(
            {
                "caption": f"KL by scaled block, factor {fmt(by_layer.get('factor'))}, {_item_label(item)}",
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


def _sampled(lengths: list, *series: list | None) -> tuple[list, ...]:
    """At most 1000 evenly spaced points of per-prompt series, so a long corpus keeps the page small."""
    if len(lengths) <= 1000:
        return (lengths, *series)
    step = len(lengths) / 1000
    keep = [int(k * step) for k in range(1000)]
    return ([lengths[k] for k in keep], *(None if s is None else [s[k] for k in keep] for s in series))


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
