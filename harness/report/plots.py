"""Plots: the report's evidence as inline SVG strings, byte-identical for identical numbers.

    svg = delta_by_site(profile_dict, key="C3-1")     # '<svg ...>...</svg>', ready to inline
    svg = c0_heatmap(layers, sites, delta, key="C0")

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
from matplotlib import rc_context
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
def delta_by_site(profile: dict, layer: int | None = None) -> Figure:
    """Δ against site for each factor, linear and log scale side by side."""
    sites, delta = profile["sites"], numbers(profile["delta"])  # (F, S)
    fig = _figure(8.6, 3.0)
    for ax, scale in zip(fig.subplots(1, 2), ("linear", "log"), strict=True):
        for f, factor in enumerate(profile["factors"]):
            y = delta[f] if scale == "linear" else np.where(delta[f] > 0, delta[f], np.nan)
            ax.plot(range(len(sites)), y, marker="o", ms=3, label=f"factor {factor:g}")
        _site_axis(ax, sites, layer)
        ax.set_yscale(scale)
        ax.set_ylabel("Δ = ‖H_clean − H_scaled‖_F")
        ax.set_title(f"Δ by site ({scale} scale)")
    fig.axes[0].legend(fontsize=8)
    return fig


@_plot
def relative_by_site(profile: dict, layer: int | None = None) -> Figure:
    """Relative Δ (Δ / ‖H_clean‖) against site, log scale, first token excluded and included."""
    sites = profile["sites"]
    rel, rel_all = numbers(profile["relative_delta"]), numbers(profile["relative_delta_all_tokens"])
    fig = _figure(8.6, 3.0)
    ax = fig.subplots()
    for f, factor in enumerate(profile["factors"]):
        (line,) = ax.plot(range(len(sites)), _positive(rel[f]), marker="o", ms=3, label=f"factor {factor:g}, first token excluded")
        ax.plot(range(len(sites)), _positive(rel_all[f]), ls="--", color=line.get_color(), label=f"factor {factor:g}, first token included")
    _site_axis(ax, sites, layer)
    ax.set_yscale("log")
    ax.set_ylabel("Δ / ‖H_clean‖")
    ax.set_title("Relative Δ by site (zeros not drawn on the log scale)")
    ax.legend(fontsize=7)
    return fig


@_plot
def first_token_by_site(profile: dict, layer: int | None = None, threshold: float | None = None) -> Figure:
    """Δ(with first token) / Δ(without) against site, with the FIRST_TOKEN_RATIO line the outcome carried."""
    sites = profile["sites"]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = numbers(profile["delta_all_tokens"]) / numbers(profile["delta"])
    fig = _figure(8.6, 3.0)
    ax = fig.subplots()
    for f, factor in enumerate(profile["factors"]):
        ax.plot(range(len(sites)), _positive(ratio[f]), marker="o", ms=3, label=f"factor {factor:g}")
    _threshold_line(ax, threshold)
    _site_axis(ax, sites, layer)
    ax.set_yscale("log")
    ax.set_ylabel("Δ with / without first token")
    ax.set_title("First-token ratio by site")
    ax.legend(fontsize=8)
    return fig


@_plot
def first_token_by_length(series: Sequence[tuple[str, Sequence[int], Sequence[object]]], threshold: float | None = None) -> Figure:
    """The per-prompt first-token ratio (median over the judged sites) against prompt length."""
    fig = _figure(5.6, 3.0)
    ax = fig.subplots()
    for label, lengths, ratios in series:
        ax.plot(numbers(list(lengths)), _positive(numbers(list(ratios))), ls="none", marker="o", ms=4, label=label)
    _threshold_line(ax, threshold)
    ax.set_yscale("log")
    ax.set_xlabel("prompt length (tokens)")
    ax.set_ylabel("median Δ with / without first token")
    ax.set_title("First-token ratio by prompt length")
    ax.legend(fontsize=7)
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
    image = ax.pcolormesh(np.arange(len(sites) + 1) - 0.5, np.arange(len(layers) + 1) - 0.5, masked, cmap="viridis", norm=norm)
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


@_plot
def final_norm_comparison(series: Sequence[tuple[str, Sequence[str], Sequence[object]]]) -> Figure:
    """Δ at the last sites, relative to the site before the final one: the pre/post final-norm readings."""
    fig = _figure(5.6, 3.0)
    ax = fig.subplots()
    for label, sites, values in series:
        values = numbers(list(values))
        base = values[0] if values.size and values[0] > 0 else np.nan
        ax.plot(range(len(sites)), values / base, marker="o", ms=4, label=label)
    if series:
        ax.set_xticks(range(len(series[0][1])), list(series[0][1]))
    ax.axhline(1.0, color="#6e7781", lw=0.8)
    ax.set_ylabel("Δ / Δ(block N−2)")
    ax.set_title("Before and after the final norm")
    ax.legend(fontsize=7)
    return fig


@_plot
def examples_plot(examples: Sequence[dict]) -> Figure:
    """The Hypothesis examples tried: margin against factor, coloured by status."""
    fig = _figure(5.6, 2.8)
    ax = fig.subplots()
    for status in sorted({str(e["status"]) for e in examples}):
        chosen = [e for e in examples if e["status"] == status]
        x = numbers([e["factor"] for e in chosen])
        y = numbers([e["margin"] for e in chosen])
        ax.plot(x, y, ls="none", marker="o", ms=4, color=_STATUS_COLOURS.get(status, "#000000"), label=status)
    ax.axhline(0.0, color="#6e7781", lw=0.8)
    ax.set_xlabel("factor")
    ax.set_ylabel("margin")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_title(f"Hypothesis examples ({len(examples)})")
    ax.legend(fontsize=7)
    return fig


# ---------------------------------------------------------------------------------------------


def _threshold_line(ax, threshold: float | None) -> None:
    if isinstance(threshold, int | float):
        ax.axhline(threshold, color="#cf222e", ls=":", label=f"FIRST_TOKEN_RATIO = {threshold:g}")


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


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
    return text[text.index("<svg") :].strip()  # drop the XML declaration and DOCTYPE: inline SVG needs neither


def _own_ids(svg: str, prefix: str) -> str:
    """Prefix every id (and every reference to one) so that many SVGs can share one page."""
    ids = set(re.findall(r'\bid="([^"]+)"', svg))

    def own(match: re.Match) -> str:
        name = match.group(2)
        return match.group(1) + (prefix + name if name in ids else name)

    return re.sub(r'(\bid="|href="#|url\(#)([^")]+)', own, svg)


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
