"""Plots: the report's evidence as inline SVG strings, byte-identical for identical numbers.

    svg = overview(series, relative_depth=False, key="overview")   # '<svg ...>...</svg>', ready to inline
    svg = c0_heatmap(layers, sites, delta, key="C0")

One function per figure the page shows: `overview` (Δ by site, with and without the first token),
`near_layer` (C1/C2), `prompt_distribution` (C3/C4), `first_token_by_length` (C5), `predictions`
(C6) and `c0_heatmap` (C0).

Every function takes JSON-ready data (as in the report's document) and a keyword `key` unique
within the page: every SVG id is prefixed with it, so two inline plots never share an id. Each
function draws a matplotlib Figure; the `_plot` wrapper returns it as SVG text. Determinism: a
fixed svg.hashsalt, text kept as <text> (svg.fonttype "none": no glyph ids), no date or creator
metadata. The Figure API is used without pyplot, so no backend or global figure state is touched.
"""

from __future__ import annotations

import functools
import io
import json
import re
from collections.abc import Callable, Sequence

import numpy as np
from matplotlib import colormaps, rc_context
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

_RC = {
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "path.simplify": False,
}
_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}
_STATUS_COLOURS = {
    "holds": "#1a7f37",
    "refuted as expected": "#6e7781",
    "not applicable": "#8c959f",
    "refuted": "#cf222e",
    "unexpected pass": "#bf8700",
}


def numbers(values: object) -> np.ndarray:
    """JSON numbers (None, "inf", "nan" allowed) as a float array."""

    def one(v: object) -> float:
        if v is None:
            return float("nan")
        return float(v)  # float("inf") and float("nan") read the report's spellings

    data = values if isinstance(values, list | tuple) else [values]
    if data and isinstance(data[0], list | tuple):
        return np.array([[one(v) for v in row] for row in data], dtype=np.float64)
    return np.array([one(v) for v in data], dtype=np.float64)


def _plot(draw: Callable[..., Figure]) -> Callable[..., str]:
    """Run `draw` under the report's rcParams and return the figure as SVG with ids owned by `key`.

    The same data drawn under two keys (the shared profile in every claim's section) is drawn once.
    """

    @functools.wraps(draw)
    def wrapper(*args: object, key: str, **kwargs: object) -> str:
        data = json.dumps([draw.__name__, args, kwargs], sort_keys=True, default=repr)
        svg = _drawn.get(data)
        if svg is None:
            with rc_context({**_RC, "svg.hashsalt": "claims-report"}):
                svg = _svg(draw(*args, **kwargs))
            _drawn[data] = svg
            while len(_drawn) > 64:
                _drawn.pop(next(iter(_drawn)))
        prefix = re.sub(r"[^A-Za-z0-9_-]", "_", key) + "-"
        return _own_ids(svg, prefix).replace("<svg ", f'<svg role="img" aria-label="{_attr(key)}" class="plot" ', 1)

    return wrapper


_drawn: dict[str, str] = {}  # plot data -> SVG, a small cache within and across renders


@_plot
def overview(series: Sequence[dict], relative_depth: bool = False) -> Figure:
    """Δ by site for the note's factors: first token excluded (left) and included (right), log scale.

    series: one dict per (model, factor) with "label", "model", "x" (site positions), "delta",
    "delta_all_tokens", "layer_x" (where the scaled block is) and, for site axes, "sites".
    relative_depth: x is block index / number of blocks (several models); else x is the site index.
    """
    fig = _figure(8.6, 3.1)
    axes = fig.subplots(1, 2, sharey=True)
    colours = _colours([s["model"] for s in series] if relative_depth else [s["label"] for s in series])
    styles = ("-", "--", ":", "-.")
    factors = sorted({s["factor"] for s in series}, key=float)
    for ax, key, title in zip(axes, ("delta", "delta_all_tokens"), ("first token excluded", "first token included"), strict=True):
        for s in series:
            colour = colours[s["model"] if relative_depth else s["label"]]
            ls = styles[factors.index(s["factor"]) % len(styles)] if relative_depth else "-"
            ax.plot(s["x"], _positive(numbers(s[key])), ls=ls, marker="o", ms=3, color=colour, label=s["label"])
            if s.get("layer_x") is not None:
                ax.axvline(s["layer_x"], color=colour, lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set_title(f"Δ by site, {title}")
        if relative_depth:
            ax.set_xlabel("relative depth (block index / number of blocks)")
        else:
            _site_axis(ax, series[0]["sites"], None)
    axes[0].set_ylabel("Δ = ‖H_clean − H_scaled‖_F")
    _legend(fig, axes[0], fontsize=7)
    return fig


@_plot
def near_layer(series: Sequence[dict], threshold: float | None = None, threshold_name: str = "", offsets: bool = False) -> Figure:
    """Relative Δ at the sites up to just past the scaled block; exact zeros drawn hollow on the floor.

    series: dicts with "label", "sites", "x" (site index, or offset from the scaled block when
    `offsets`), "values" (relative Δ), "layer_x".
    """
    fig = _figure(5.8, 2.8)
    ax = fig.subplots()
    values = [v for s in series for v in numbers(s["values"]) if np.isfinite(v) and v > 0]
    candidates = values + ([threshold] if isinstance(threshold, int | float) and threshold > 0 else [])
    floor = min(candidates) / 100 if candidates else 1e-9
    colours = _colours([s["label"] for s in series])
    for s in series:
        y = numbers(s["values"])
        x = np.asarray(s["x"], dtype=np.float64)
        zero = np.isfinite(y) & (y <= 0)
        (line,) = ax.plot(x, np.where(zero, np.nan, _positive(y)), marker="o", ms=4, color=colours[s["label"]], label=s["label"])
        if zero.any():
            ax.plot(x[zero], np.full(zero.sum(), floor), ls="none", marker="o", ms=6, mfc="none", color=line.get_color())
    if isinstance(threshold, int | float):
        ax.axhline(threshold, color="#cf222e", ls="--", lw=1, label=f"{threshold_name} = {threshold:g}")
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor / 3)
    ax.text(0.01, 0.02, "hollow markers: Δ exactly 0", transform=ax.transAxes, fontsize=7, color="#57606a")
    if offsets:
        ax.set_xlabel("site, counted from the scaled block L")
        xs = sorted({int(v) for s in series for v in s["x"]})
        ax.set_xticks(xs, [f"L{v:+d}" if v else "L" for v in xs])
    else:
        _site_axis(ax, series[0]["sites"], None)
        ax.set_xticks(range(len(series[0]["sites"])), series[0]["sites"], rotation=0, fontsize=7)
        if series[0].get("layer_x") is not None:
            ax.axvline(series[0]["layer_x"], color="#6e7781", lw=0.8, ls=":")
    ax.set_ylabel("relative Δ = Δ / ‖H_clean‖")
    _legend(fig, ax, fontsize=7)
    return fig


@_plot
def prompt_distribution(groups: Sequence[dict], bounds: Sequence[float] = (), xlabel: str = "", needs: str = "") -> Figure:
    """Each group's per-prompt statistic as a strip over a box, with the aggregate and its 95 % interval.

    groups: dicts with "label", "values" (one per prompt; None = not finite, left out and counted),
    "statistic", "ci95". bounds: the threshold(s); two bounds shade the allowed band between them.
    """
    fig = _figure(5.8, 0.9 + 0.55 * max(len(groups), 1))
    ax = fig.subplots()
    labels = []
    for row, group in enumerate(groups):
        values = numbers(group["values"])
        shown = values[np.isfinite(values)]
        left_out = values.size - shown.size
        if shown.size:
            ax.boxplot(
                shown,
                positions=[row],
                orientation="horizontal",
                widths=0.5,
                showfliers=False,
                manage_ticks=False,
                medianprops={"color": "#57606a"},
                boxprops={"color": "#8c959f"},
                whiskerprops={"color": "#8c959f"},
                capprops={"color": "#8c959f"},
            )
            jitter = ((np.arange(shown.size) * 0.618034) % 1.0 - 0.5) * 0.35  # even, deterministic spread
            ax.plot(shown, row + jitter, ls="none", marker="o", ms=2.5, alpha=0.55, color="#0969da")
        stat = numbers(group.get("statistic"))[0]
        ci = numbers(group.get("ci95") or [None, None])
        if np.isfinite(stat):
            err = [[stat - ci[0]], [ci[1] - stat]] if np.all(np.isfinite(ci)) else None
            ax.errorbar([stat], [row], xerr=err, fmt="D", ms=6, color="#1f2328", capsize=4, zorder=5)
        labels.append(group["label"] + (f"\n({left_out} not finite)" if left_out else ""))
    ax.set_yticks(range(len(groups)), labels, fontsize=7)
    ax.set_ylim(len(groups) - 0.5, -0.5)
    bounds = [float(b) for b in bounds if isinstance(b, int | float)]
    for b in bounds:
        ax.axvline(b, color="#cf222e", ls="--", lw=1)
    if len(bounds) == 2:
        ax.axvspan(min(bounds), max(bounds), color="#1a7f37", alpha=0.07)
    ax.set_xlabel(xlabel)
    if needs:
        ax.set_title(f"red dashed: {needs}", fontsize=8)
    return fig


@_plot
def first_token_by_length(series: Sequence[dict], predicted: Sequence[dict] = (), threshold: float | None = None) -> Figure:
    """C5: per-prompt first-token ratio against prompt length, with the curve predicted from the norms.

    series: dicts with "label", "lengths", "judged" (median over the judged blocks) and optionally
    "at_layer" (at the scaled block). predicted: dicts with "label", "lengths", "ratio", "crossing".
    """
    fig = _figure(5.8, 3.0)
    ax = fig.subplots()
    colours = _colours([s["label"] for s in series] + [p["label"] for p in predicted])
    for s in series:
        lengths, colour = numbers(list(s["lengths"])), colours[s["label"]]
        points = [("judged", "median over the judged blocks", {"ms": 3.5})]
        if s.get("at_layer"):  # hollow: what the predicted curve describes
            points.append(("at_layer", "at the scaled block", {"ms": 4, "mfc": "none", "alpha": 0.6}))
        for key, what, style in points:
            y = _positive(numbers(list(s[key])))
            ax.plot(lengths, y, ls="none", marker="o", color=colour, label=f"{s['label']}: {what}", **style)
    for p in predicted:
        ax.plot(
            numbers(list(p["lengths"])),
            _positive(numbers(list(p["ratio"]))),
            color="#1f2328",
            lw=1.2,
            label=f"predicted at the scaled block{', ' + p['label'] if len(predicted) > 1 else ''}",
        )
        crossing = numbers(p.get("crossing"))[0]
        if np.isfinite(crossing) and crossing > 1:
            ax.axvline(crossing, color="#1f2328", ls=":", lw=1)
            text = f"predicted ≥ {threshold:g} up to {crossing:.3g} tokens" if threshold else f"{crossing:.3g} tokens"
            if crossing < 2:
                text = f"predicted never ≥ {threshold:g} (crossing {crossing:.3g} < 2 tokens)"
            ax.annotate(text, (crossing, 0.93), xycoords=("data", "axes fraction"), xytext=(4, 0), textcoords="offset points", fontsize=7)
    _threshold_line(ax, threshold)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("prompt length (tokens)")
    ax.set_ylabel("Δ with / without first token")
    _legend(fig, ax, fontsize=6.5, loc="center right")
    return fig


@_plot
def predictions(dose: Sequence[dict], by_layer: Sequence[dict]) -> Figure:
    """C6: KL and top-1 agreement against the factor (factor 1 included), and KL against the scaled layer.

    dose: dicts with "label", "factors", "kl", "top1_agreement"; by_layer: "label", "layers", "kl", "factor".
    """
    fig = _figure(8.6, 2.8)
    axes = fig.subplots(1, 3 if by_layer else 2)
    colours = _colours([d["label"] for d in dose] + [d["label"] for d in by_layer])
    for d in dose:
        x = numbers(d["factors"])
        axes[0].plot(x, numbers(d["kl"]), marker="o", ms=3, color=colours[d["label"]], label=d["label"])
        axes[1].plot(x, numbers(d["top1_agreement"]), marker="o", ms=3, color=colours[d["label"]], label=d["label"])
    for ax, name in zip(axes[:2], ("KL(clean ‖ scaled), nats", "top-1 agreement"), strict=True):
        ax.axvline(1.0, color="#6e7781", lw=0.8, ls=":")
        ax.set_xlabel("factor s")
        ax.set_ylabel(name)
    axes[0].set_title("KL against the factor")
    axes[1].set_title("top-1 agreement against the factor")
    axes[1].set_ylim(top=1.02)
    if by_layer:
        for d in by_layer:
            axes[2].plot(
                numbers(d["layers"]),
                numbers(d["kl"]),
                marker="o",
                ms=3,
                color=colours[d["label"]],
                label=f"{d['label']}, factor {float(d['factor']):g}",
            )
        axes[2].set_xlabel("scaled block")
        axes[2].set_ylabel("KL, nats")
        axes[2].set_title("KL against the scaled block")
        _legend(fig, axes[2], fontsize=7)
    _legend(fig, axes[0], fontsize=7)
    return fig


@_plot
def c0_heatmap(layers: Sequence[int], sites: Sequence[str], delta: object) -> Figure:
    """Δ for each intervention layer (rows) at each site (columns), log colour scale; 0 is blank."""
    matrix = numbers(delta)  # (L, S)
    positive = matrix[np.isfinite(matrix) & (matrix > 0)]
    fig = _figure(8.6, 0.9 + 0.28 * max(len(layers), 1))
    ax = fig.subplots()
    ax.grid(False)
    masked = np.ma.masked_where(~(np.isfinite(matrix) & (matrix > 0)), matrix)
    norm = LogNorm(vmin=float(positive.min()), vmax=float(positive.max())) if positive.size else None
    cmap = colormaps["viridis"].resampled(24)  # 24 colour steps: the colour bar is drawn as that many vector cells
    image = ax.pcolormesh(np.arange(len(sites) + 1) - 0.5, np.arange(len(layers) + 1) - 0.5, masked, cmap=cmap, norm=norm)
    ax.invert_yaxis()  # vector cells, not an embedded raster image; first layer on top
    ax.set_xticks(range(len(sites)), list(sites), rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(layers)), [f"block {n}" for n in layers], fontsize=7)
    for row, n in enumerate(layers):  # the scaled block's own column, outlined
        if f"block.{n}" in sites:
            col = list(sites).index(f"block.{n}")
            ax.add_patch(_rect(col - 0.5, row - 0.5))
    ax.set_xlabel("site")
    ax.set_ylabel("scaled block")
    ax.set_title("Δ by scaled block × site (blank: exactly 0; outlined: the scaled block)")
    bar = fig.colorbar(image, ax=ax, label="Δ")
    bar.solids.set_rasterized(False)  # vector, like everything else: no embedded PNG
    return fig


# ---------------------------------------------------------------------------------------------


def _threshold_line(ax, threshold: float | None) -> None:
    if isinstance(threshold, int | float):
        ax.axhline(threshold, color="#cf222e", ls=":", label=f"FIRST_TOKEN_RATIO = {threshold:g}")


_PALETTE = ("#0969da", "#bf3989", "#1a7f37", "#bc4c00", "#8250df", "#57606a", "#0a3069", "#953800")


def _colours(labels: Sequence[str]) -> dict[str, str]:
    """One colour per distinct label, in order of first appearance."""
    out: dict[str, str] = {}
    for label in labels:
        out.setdefault(label, _PALETTE[len(out) % len(_PALETTE)])
    return out


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


LEGEND_INSIDE = 6  # entries a legend may hold inside its axes; more go below the plot, which grows to hold them
WIDEST = 8.6  # inches: the overview's and C0's width, the page's widest figures


def _legend(fig: Figure, ax, fontsize: float, loc: str = "best") -> None:
    """`ax`'s legend: inside it when short, else under the figure in as many columns as fit, the figure made taller
    by the legend's height, so the plot keeps its size however many models and layers there are."""
    entries = dict(zip(*reversed(ax.get_legend_handles_labels()), strict=True))  # label -> handle, each label once
    labels, handles = list(entries), list(entries.values())
    if len(labels) <= LEGEND_INSIDE:
        ax.legend(handles, labels, fontsize=fontsize, loc=loc)
        return
    point = 1 / 72  # inches
    entry = max(len(label) for label in labels) * 0.55 * fontsize * point + 0.45  # text at ~0.55 em per character, and the marker
    if len(labels) * entry > 12 * fig.get_figwidth():  # more than a dozen rows: as wide as the page's widest figure
        fig.set_figwidth(max(fig.get_figwidth(), WIDEST))
    columns = max(1, min(len(labels), int(fig.get_figwidth() // entry)))
    rows = -(-len(labels) // columns)
    fig.set_figheight(fig.get_figheight() + rows * 1.35 * fontsize * point + 0.15)
    fig.legend(handles, labels, loc="outside lower center", ncols=columns, fontsize=fontsize, frameon=False)


def _site_axis(ax, sites: Sequence[str], layer: int | None) -> None:
    ax.set_xticks(range(len(sites)), [s.replace("block.", "b") for s in sites], rotation=45, fontsize=7)
    ax.set_xlabel("site")
    if layer is not None and f"block.{layer}" in sites:
        ax.axvline(list(sites).index(f"block.{layer}"), color="#cf222e", lw=0.8, ls=":")


def _positive(values: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(values) & (values > 0), values, np.nan)


def _rect(x: float, y: float):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), 1, 1, fill=False, edgecolor="#ffffff", lw=1.2)


def _svg(fig: Figure) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata=_METADATA)
    text = buffer.getvalue()
    text = text[text.index("<svg") :].strip()  # drop the XML declaration and DOCTYPE: inline SVG needs neither
    return _compact(text)


def _compact(svg: str) -> str:
    """The same drawing in fewer bytes: geometry to 0.01 pt (matplotlib writes 1e-6), no indentation
    between tags, no invisible paths (masked heatmap cells), and a marker series' shared style
    said once on its group instead of on every point. Text is left as drawn."""
    svg = _ATTRIBUTE.sub(lambda m: m.group(1) + _DECIMALS.sub(r"\1", m.group(2)) + '"', svg)
    svg = _BETWEEN_TAGS.sub(">\n<", svg)
    svg = _INVISIBLE.sub("", svg)
    return _MARKERS.sub(_hoist_style, svg)


def _hoist_style(match: re.Match) -> str:
    uses = _USE.findall(match.group(2))
    styles = {style for _, style in uses}
    if len(styles) != 1:
        return match.group(0)
    body = "".join(f"<use {attrs}/>\n" for attrs, _ in uses)
    return f'<g{match.group(1)} style="{styles.pop()}">\n{body}</g>'


_MARKERS = re.compile(r'<g((?: clip-path="[^"]*")?)>\n((?:<use [^>]*/>\n)+)</g>')
_USE = re.compile(r'<use ([^>]*?) style="([^"]*)"/>')
_BETWEEN_TAGS = re.compile(r">\s*\n\s*<")
_INVISIBLE = re.compile(r'<path d="[^"]*"(?: clip-path="[^"]*")? style="fill: none"/>\n?')
_ATTRIBUTE = re.compile(r'(\s(?:d|x|y|x1|x2|y1|y2|width|height|transform|points|cx|cy|r)=")([^"]*)"')
_DECIMALS = re.compile(r"(\d\.\d{2})\d+")


def _own_ids(svg: str, prefix: str) -> str:
    """Prefix every id (and every reference to one) so that many SVGs can share one page."""
    # matplotlib's ids ("C3-prompts-mde7751be2b") become short, numbered in order of appearance: "C3-prompts-7"
    ids = {name: f"{prefix}{n}" for n, name in enumerate(dict.fromkeys(re.findall(r'\bid="([^"]+)"', svg)))}

    def own(match: re.Match) -> str:
        name = match.group(2)
        return match.group(1) + ids.get(name, name)

    return re.sub(r'(\bid="|href="#|url\(#)([^")]+)', own, svg)


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
