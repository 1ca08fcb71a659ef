"""Render: the report's document (see `outcomes.build_document`) as one self-contained HTML page.

    html = render_html(doc)      # str: inline CSS and SVG, no script, no external URL

All text goes through Jinja2 with autoescape on; only the SVG that `plots` draws is inserted as
markup (matplotlib escapes the text inside it). Plots and numbers depend on the document alone, so
two renders of the same results differ only in the header's date and command line.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup

from harness.report import plots
from harness.report.page import PAGE

# Header fields in the order shown; anything else run info carries follows them.
HEADER_KEYS = (
    "model", "revision", "architecture", "source", "device", "dtype", "layer", "prompts", "n_prompts", "unknown_tokens",
    "hypothesis_profile", "hypothesis_seed", "versions", "date", "command",
)  # fmt: skip
_NOT_SHOWN = {"settings", "prompt_texts", "error", "blocks", "max_length"}
# The page shows at most this many values of a per-prompt list (and of the prompts); the JSON keeps all.
SHOWN_VALUES = 50


def render_html(doc: dict) -> str:
    """The page for `doc`; see the module docstring."""
    env = Environment(autoescape=True, undefined=StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = fmt
    env.filters["css"] = lambda status: "st-" + str(status).replace(" ", "-")
    return env.from_string(PAGE).render(
        doc=doc,
        header=_header(doc.get("run") or {}),
        claims=[_claim_view(claim) for claim in doc["claims"]],
    )


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


# ---------------------------------------------------------------------------------------------


def _header(run: dict) -> dict:
    rows = [(key, run[key]) for key in HEADER_KEYS if key in run]
    rows += [(key, value) for key, value in run.items() if key not in HEADER_KEYS and key not in _NOT_SHOWN]
    prompts = list(run.get("prompt_texts") or [])
    return {
        "rows": rows,
        "settings": run.get("settings") or {},
        "prompts": prompts[:SHOWN_VALUES],
        "prompts_left_out": max(0, len(prompts) - SHOWN_VALUES),
        "error": run.get("error"),
    }


def _claim_view(claim: dict) -> dict:
    cid = claim["claim"]
    items = claim["items"]
    figures: list[tuple[str, Markup]] = []
    tables: list[dict] = []
    layer = next((i.get("layer") for i in items if isinstance(i.get("layer"), int)), None)
    thresholds = next((i["thresholds"] for i in items if isinstance(i.get("thresholds"), dict) and i["thresholds"]), {})
    ratio = thresholds.get("FIRST_TOKEN_RATIO")  # as the run judged it, not today's constant

    def figure(caption: str, draw: Callable[[], str]) -> None:
        try:
            figures.append((caption, Markup(draw())))
        except Exception as exc:  # a plot must not cost the report: show why it is missing
            figures.append((caption, Markup("<p class='plot-error'>{}</p>").format(f"plot failed: {type(exc).__name__}: {exc}")))

    for j, (label, prof) in enumerate(_profiles(items)):
        key = f"{cid}-{j}"
        figure(f"Δ against site, {label}", lambda p=prof, k=key: plots.delta_by_site(p, key=k + "-delta", layer=layer))
        figure(f"Relative Δ against site, {label}", lambda p=prof, k=key: plots.relative_by_site(p, key=k + "-rel", layer=layer))
        if cid == "C5":
            caption = f"First-token ratio against site, {label}"
            figure(caption, lambda p=prof, k=key: plots.first_token_by_site(p, key=k + "-ft", layer=layer, threshold=ratio))
        tables.append(_profile_table(label, prof))
    lengths = [
        (_item_label(i), *_sampled(i["evidence"]["prompt_lengths"], i["evidence"]["prompt_ratio"]))
        for i in items
        if isinstance(i.get("evidence"), dict) and "prompt_ratio" in i["evidence"]
    ]
    if lengths:
        figure(
            "First-token ratio against prompt length", lambda: plots.first_token_by_length(lengths, key=f"{cid}-length", threshold=ratio)
        )
    norms = _token_norm_table(items)
    if norms:
        tables.append(norms)
    for n, item in enumerate(i for i in items if isinstance(i.get("evidence"), dict) and "layers" in i["evidence"]):
        ev = item["evidence"]
        figure(
            f"Intervention layer × site, factor {fmt(ev.get('factor'))}",
            lambda ev=ev, n=n: plots.c0_heatmap(ev["layers"], ev["sites"], ev["delta"], key=f"{cid}-c0-{n}"),
        )
        tables.append(_matrix_table(ev))
    finals = [s for s in (_final_series(i) for i in items) if s is not None]
    if finals:
        figure("Pre/post final-norm comparison", lambda: plots.final_norm_comparison(finals, key=f"{cid}-final"))
    for n, item in enumerate(i for i in items if i.get("examples")):
        figure(
            f"Hypothesis examples tried, {_item_label(item)}",
            lambda ex=item["examples"], n=n: plots.examples_plot(ex, key=f"{cid}-examples-{n}"),
        )
    return {
        **claim,
        "anchor": f"claim-{cid}",
        "thresholds": thresholds,
        "item_views": [{**i, "label": _item_label(i), "facts": _evidence_rows(i.get("evidence"))} for i in items],
        "figures": figures,
        "tables": tables,
    }


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


_PER_FACTOR = ("delta", "delta_all_tokens", "relative_delta", "relative_delta_all_tokens", "prompt_delta", "prompt_delta_all_tokens")


def _merged(groups: dict[str, tuple[list[str], list[dict]]]) -> list[tuple[list[str], dict]]:
    out = []
    for labels, profs in groups.values():
        rows: dict[float, dict[str, object]] = {}
        for prof in profs:
            for f, factor in enumerate(prof["factors"]):
                rows.setdefault(factor, {k: prof[k][f] for k in _PER_FACTOR if k in prof})
        merged = {**profs[0], "factors": sorted(rows, key=float)}
        for key in _PER_FACTOR:
            if all(key in row for row in rows.values()):
                merged[key] = [rows[factor][key] for factor in merged["factors"]]
        out.append((labels, merged))
    return out


def _item_label(item: dict) -> str:
    if item.get("source") == "hypothesis":
        return "hypothesis"
    if item.get("factor") is not None:
        return f"factor {fmt(item['factor'])}"
    return item.get("nodeid", "?").rsplit("::", 1)[-1]


def _profile_table(label: str, prof: dict) -> dict:
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
    return {"caption": f"Numbers, {label}", "columns": columns, "rows": rows}


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


def _sampled(lengths: list, ratios: list) -> tuple[list, list]:
    """At most 1000 evenly spaced points of a per-prompt series, so a long corpus keeps the page small."""
    if len(lengths) <= 1000:
        return lengths, ratios
    step = len(lengths) / 1000
    keep = [int(k * step) for k in range(1000)]
    return [lengths[k] for k in keep], [ratios[k] for k in keep]


def _matrix_table(ev: dict) -> dict:
    rows = [[f"block {n}", *(fmt(v) for v in row)] for n, row in zip(ev["layers"], ev["delta"], strict=False)]
    return {"caption": f"Δ by scaled block × site, factor {fmt(ev.get('factor'))}", "columns": ["scaled", *ev["sites"]], "rows": rows}


def _final_series(item: dict) -> tuple[str, list[str], list[object]] | None:
    ev = item.get("evidence")
    if not isinstance(ev, dict) or "readings" not in ev or "delta" not in ev or "sites" not in ev:
        return None
    readings, sites = ev["readings"], ev["sites"]
    names: list[str] = []
    for reading in ("note", "raw"):
        for end in ("previous", "final"):
            name = (readings.get(reading) or {}).get(end)
            if name in sites and name not in names:
                names.append(name)
    names.sort(key=sites.index)
    return (_item_label(item), names, [ev["delta"][sites.index(n)] for n in names])


def _evidence_rows(evidence: object) -> list[tuple[str, str]]:
    """The claim-specific evidence as (name, text); the profile and the C0 matrix have their own tables."""
    if not isinstance(evidence, dict):
        return []
    rows = []
    for key, value in evidence.items():
        if key in ("profile", "token_norms") or (key == "delta" and "layers" in evidence):
            continue
        if isinstance(value, list) and len(value) > SHOWN_VALUES:  # per-prompt lists: the JSON has them all
            rows.append((key, f"{fmt(value[:SHOWN_VALUES])}, … ({len(value)} values; all in the JSON twin)"))
            continue
        if key == "readings" and isinstance(value, dict):
            for name, reading in value.items():
                rows.append((f"{key}.{name}", fmt(reading)))
            continue
        rows.append((key, fmt(value)))
    return rows
