"""The report's figures: the one figure that makes each claim's point (its record's `figure`), drawn by harness.report.plots.

    claim_figure(claim, items, thresholds, dtype, several, layered)   # (caption, svg) or None when its data is absent
    profiles(items)                                                   # the profiles behind a claim's items, factors merged
"""

from __future__ import annotations

import json
from collections.abc import Callable

from markupsafe import Markup

from harness.report import plots
from harness.report.text import NEEDS, about, fmt, item_label, rule_bounds, short


def draw(draw: Callable[[], str]) -> Markup:
    try:
        return Markup(draw())
    except Exception as exc:  # a plot must not cost the report: show why it is missing
        return Markup("<p class='plot-error'>{}</p>").format(f"plot failed: {type(exc).__name__}: {exc}")


def claim_figure(
    claim: dict, items: list[dict], thresholds: dict, dtype: str, several: bool, layered: bool = False
) -> tuple[str, Markup] | None:
    """The one figure that makes a claim's point (its record's `figure`), as (caption, svg), or None when its data is absent."""
    cid, figure, needs_rule = claim["claim"], about(claim, "figure") or "", about(claim, "needs") or ""
    measured = [i for i in items if isinstance(i.get("evidence"), dict)]
    if figure == "near_layer":
        return _near_layer_figure(cid, needs_rule, measured, thresholds, dtype, several, layered)
    if figure == "prompt_distribution":
        groups = [
            {
                "label": group_label(i, several, layered),
                "values": i["evidence"]["prompt_statistic"],
                "statistic": i.get("statistic"),
                "ci95": i.get("ci95"),
            }
            for i in measured
            if "prompt_statistic" in i["evidence"]
        ]
        if not groups:
            return None
        name = about(claim, "statistic_name") or "statistic"
        bounds = (
            rule_bounds(needs_rule, thresholds)
            if needs_rule == "within"
            else [next((i.get("threshold") for i in measured if i.get("threshold") is not None), None)]
        )
        needs = "allowed band" if needs_rule == "within" else f"needs {NEEDS.get(needs_rule, '')} {short(bounds[0])}"
        caption = (
            f"{name[0].upper() + name[1:]}, prompt by prompt, for each item: dots are prompts, the box their quartiles, "
            "the diamond the statistic over all prompts with its 95 % interval"
        )
        return caption, draw(lambda: plots.prompt_distribution(groups, bounds=bounds, xlabel=name, needs=needs, key=f"{cid}-prompts"))
    if figure == "first_token_by_length":
        return _c5_figure(measured, thresholds, several, layered)
    if figure == "predictions":
        return _c6_figure(measured, several)
    c0 = [i for i in measured if "layers" in i["evidence"] and "delta" in i["evidence"]]
    if figure == "causality_heatmap" and c0:
        ev = c0[0]["evidence"]
        caption = f"Intervention layer × site, factor {fmt(ev.get('factor'))}" + (f", {c0[0].get('model')}" if several else "")
        return caption, draw(lambda: plots.c0_heatmap(ev["layers"], ev["sites"], ev["delta"], key=f"{cid}-c0"))
    return None


def group_label(item: dict, several: bool, layered: bool = False) -> str:
    label = item_label(item) if item.get("source") != "hypothesis" else "hypothesis (closest example)"
    return who(item, several, layered) + label


def who(item: dict, several: bool, layered: bool) -> str:
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
    for label, prof in profiles(items):
        at = prof["sites"].index(f"block.{prof['layer']}") if f"block.{prof.get('layer')}" in prof["sites"] else None
        if at is None:
            continue
        end = min(at + 2, len(prof["sites"]))
        labels.append(label)
        for f, factor in enumerate(prof["factors"]):
            values = prof["relative_delta"][f][:end]
            x = [k - at for k in range(end)] if offsets else list(range(end))
            name = who({"model": prof.get("model"), "layer": prof.get("layer")}, several, layered) + f"factor {factor:g}"
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
    svg = draw(lambda: plots.near_layer(series, threshold=limit, threshold_name=limit_name, offsets=offsets, key=f"{cid}-near"))
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
        lengths, judged_shown, at_layer = sampled(ev["prompt_lengths"], judged, at_layer)
        series.append({"label": group_label(item, several, layered), "lengths": lengths, "judged": judged_shown, "at_layer": at_layer})
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
    return caption, draw(lambda: plots.first_token_by_length(series, predicted=predicted, threshold=ratio, key="C5-length"))


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
    return caption, draw(lambda: plots.predictions(dose, by_layer, key="C6-predictions"))


def profiles(items: list[dict]) -> list[tuple[str, dict]]:
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
        labels.append(item_label(item))
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


def sampled(lengths: list, *series: list | None) -> tuple[list, ...]:
    """At most 1000 evenly spaced points of per-prompt series, so a long corpus keeps the page small."""
    if len(lengths) <= 1000:
        return (lengths, *series)
    step = len(lengths) / 1000
    keep = [int(k * step) for k in range(1000)]
    return ([lengths[k] for k in keep], *(None if s is None else [s[k] for k in keep] for s in series))
