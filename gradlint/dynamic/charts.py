"""``--report DIR``: the gradient-flow charts of a model (SVG), drawn with matplotlib; what
they plot is computed in :mod:`gradlint.dynamic.chart_data`, the page that lists them is
:mod:`gradlint.dynamic.report`.

Every measured model is charted, the healthy ones too, and each chart plots what its verdicts
used:

- **flow** (every model): the weight-gradient norm of each parameterized layer, in the
  execution order the forward hooks recorded, in two panels. The first is normalized to the
  last weighted layer (‖∇W_l‖ / ‖∇W_last‖, seed by seed, geometric mean), with the band
  between the vanishing and exploding *ratio* thresholds shaded: the ratio test. The second
  gives the absolute norms with the band of the absolute thresholds. The static flow model's
  prediction is a line over the bars (normalized the same way in the first panel), matched to
  the bars by layer name and broken where a layer has no prediction. Past
  :data:`HORIZONTAL_FROM` layers the bars are horizontal; past
  :data:`~gradlint.dynamic.chart_data.GROUP_FROM`, repeated blocks are grouped (one bar per
  block, its geometric mean), so labels stay readable.
- **symmetry** (constant-init findings, GL201): each weighted layer's row spread after the
  SGD steps of the probe, with the symmetry threshold.
- **training** (recurrent training findings, GL401/GL402): the gradient norm per training
  step, as the backward pass gives it (raw) and as it reaches the update (clipped), with the
  threshold.

Bars of the layers a finding names are drawn in the finding's verdict colour; the legend is
outside the plot area; every chart has the same size. Each bar (or point) carries a tooltip
(SVG ``<title>``: the layer and the number), shown on hover when the page is opened in a
browser. matplotlib (extra ``torch-gradlint[dynamic]``) is imported here only, with the Agg backend.
"""

from __future__ import annotations

import html
import math
import os
from pathlib import Path

from gradlint.dynamic.chart_data import (
    GROUP_FROM,
    _fmt,
    _group,
    _label,
    _shown,
    flow_series,
    measurement_order,
    prediction_series,
)
from gradlint.dynamic.verdict import THRESHOLDS, geomean
from gradlint.text import write_atomic

_COLOURS = {"confirmed": "#c0392b", "refuted": "#2e86c1", "inconclusive": "#b7950b", "not-run": "#b7950b"}
_PLAIN = "#95a5a6"
_PREDICTED = "#1b2631"
_BAND = "#27ae60"
PREDICTION_LABEL = "predicted (static flow model)"
#: every chart's size, in inches
FIGSIZE = (12.0, 6.5)
HORIZONTAL_FROM = 40


def _span(names: list[str], layers: tuple) -> range:
    if not layers:
        return range(0)
    idx = [names.index(n) for n in (layers[0], layers[-1]) if n in names]
    if not idx:
        return range(0)
    return range(min(idx), max(idx) + 1)


# ---------------------------------------------------------------- drawing
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # text stays text in the SVG (searchable, a tenth of the size, several times faster to write
    # than glyphs as paths); the same hash salt gives the same file for the same chart
    matplotlib.rcParams["svg.fonttype"] = "none"
    matplotlib.rcParams["svg.hashsalt"] = "gradlint"
    return plt


def _decade(value, _pos=None) -> str:
    """A log axis's tick label as plain text (``1e-3``): matplotlib's default is mathtext,
    parsed per label, which is most of a chart's drawing time."""
    return f"{value:.0e}".replace("e-0", "e-").replace("e+0", "e").replace("e+", "e").replace("1e0", "1")


def _no_minor_ticks(ax) -> None:
    """Log axes draw labelled decades only (no minor ticks, plain-text labels)."""
    from matplotlib.ticker import FuncFormatter, NullLocator

    for axis in (ax.xaxis, ax.yaxis):
        if axis.get_scale() == "log":
            axis.set_minor_locator(NullLocator())
            axis.set_major_formatter(FuncFormatter(_decade))


def _colours(measurement, diagnostics, names) -> tuple[list[str], dict]:
    colours = [_PLAIN] * len(names)
    legend = {}
    for i in measurement.findings:
        d = diagnostics[i]
        verdict = dict(d.evidence).get("verdict", "inconclusive") if d.evidence else "inconclusive"
        layers = tuple(dict(d.target).get("layers", ())) if d.target else ()
        mapped = dict(d.evidence).get("mapped_layers") or {} if d.evidence else {}
        layers = tuple(mapped.get(n, n) for n in layers if n)
        for k in _span(names, layers):
            colours[k] = _COLOURS.get(verdict, _PLAIN)
        legend[f"{d.code} line {d.line}: {verdict}"] = _COLOURS.get(verdict, _PLAIN)
    return colours, legend


def _legend(fig, handles, labels) -> None:
    if handles:  # right of the plot area: it never hides a bar
        fig.legend(
            handles,
            labels,
            fontsize=7,
            loc="upper left",
            bbox_to_anchor=(0.835, 0.90),
            borderaxespad=0.0,
            framealpha=0.9,
        )


def _save(fig, path: Path, tips: dict[str, str]) -> None:
    """SVG with a ``<title>`` (hover text) in each element whose gid ``tips`` names."""
    import io

    plt = _plt()
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    svg = buf.getvalue()
    for gid, tip in tips.items():
        svg = svg.replace(f'<g id="{gid}">', f'<g id="{gid}"><title>{html.escape(tip)}</title>', 1)
    write_atomic(str(path), svg.encode("utf-8"), durable=False)


def _bars(ax, values, colours, labels, horizontal, tips, prefix, what, labelled: bool = True) -> None:
    """Bars on a log axis, one per label. The labels are plain texts beside the category axis,
    which has no ticks (a tick per bar is most of a chart's drawing time); only the panel that
    shows them gets them (``labelled``)."""
    from matplotlib.transforms import blended_transform_factory

    positions = list(range(len(values)))
    heights = [_shown(v) for v in values]
    size = 6 if len(labels) > 25 else 7
    if horizontal:
        artists = ax.barh(positions, heights, color=colours, height=0.8)
        ax.set_ylim(len(values) - 0.5, -0.5)  # the first layer on top: forward order reads downwards
        ax.set_yticks([])
        ax.set_xscale("log")
        if labelled:
            where = blended_transform_factory(ax.transAxes, ax.transData)
            for k, label in enumerate(labels):
                ax.text(-0.01, k, label, transform=where, ha="right", va="center", fontsize=size)
    else:
        artists = ax.bar(positions, heights, color=colours, width=0.8)
        ax.set_xlim(-0.5, len(values) - 0.5)
        ax.set_xticks([])
        ax.set_yscale("log")
        if labelled:
            where = blended_transform_factory(ax.transData, ax.transAxes)
            for k, label in enumerate(labels):
                ax.text(
                    k,
                    -0.02,
                    label,
                    transform=where,
                    ha="right",
                    va="top",
                    rotation=70,
                    rotation_mode="anchor",
                    fontsize=size,
                )
    for k, (artist, v) in enumerate(zip(artists, values)):
        gid = f"{prefix}-{k}"
        artist.set_gid(gid)
        tips[gid] = f"{labels[k]}: {what} {_fmt(v) if v == v else 'nan'}"


def _band(ax, low, high, horizontal, label_low, label_high) -> None:
    span = ax.axvspan if horizontal else ax.axhspan
    line = ax.axvline if horizontal else ax.axhline
    span(low, high, color=_BAND, alpha=0.09, zorder=0)
    line(low, color=_BAND, linestyle="--", linewidth=0.8)
    line(high, color=_BAND, linestyle="--", linewidth=0.8)
    # the threshold labels sit outside the axes, beside the axis they mark
    for value, label in ((low, label_low), (high, label_high)):
        if horizontal:
            at, transform, ha, va = (value, 1.01), ax.get_xaxis_transform(), "center", "bottom"
        else:
            at, transform, ha, va = (1.005, value), ax.get_yaxis_transform(), "left", "center"
        ax.text(*at, label, transform=transform, ha=ha, va=va, fontsize=6, color="#1e8449")


def _limits(ax, values, low, high, horizontal) -> None:
    finite = [v for v in values if v is not None and v == v and 0 < v < math.inf]
    lo = min(finite + [low]) / 10
    hi = max(finite + [high]) * 10
    (ax.set_xlim if horizontal else ax.set_ylim)(lo, hi)
    _no_minor_ticks(ax)


def _line(ax, values, horizontal, tips, prefix, labels) -> bool:
    pts = [math.nan if v is None else v for v in values]
    if not any(v == v for v in pts):
        return False
    positions = list(range(len(pts)))
    xs, ys = (pts, positions) if horizontal else (positions, pts)
    (artist,) = ax.plot(xs, ys, color=_PREDICTED, linewidth=1.2, marker="o", markersize=3, zorder=3)
    artist.set_gid(f"{prefix}-line")
    shown = [f"{labels[k]} {_fmt(v)}" for k, v in enumerate(pts) if v == v]
    tips[f"{prefix}-line"] = "predicted: " + "; ".join(shown[:40]) + (" …" if len(shown) > 40 else "")
    return True


def chart(measurement, diagnostics, thresholds: dict, path: Path) -> dict:
    """The flow chart of one model to ``path`` (SVG); return what it plotted: ``kind``,
    ``layers`` (the bars' layer names, execution order), ``measured`` (absolute ‖∇W‖ per
    layer), ``relative`` (per layer, normalized to ``last``), ``predicted``
    (:func:`prediction_series`), ``bars`` (the labels drawn: layers, or groups of them) and
    ``horizontal``."""
    plt = _plt()
    t = {**THRESHOLDS, **(thresholds or {})}
    s = flow_series(measurement, diagnostics)
    names = s["layers"]
    colours, legend = _colours(measurement, diagnostics, names)
    colours = [c if w or c != _PLAIN else "#d5dbdb" for c, w in zip(colours, s["weighted"])]
    groups = _group(names) if len(names) > GROUP_FROM else [(n, [k]) for k, n in enumerate(names)]
    labels = [_label(g) for g, _ in groups]

    def pooled(values):
        # a group's bar: its weighted layers' geometric mean (a block's norm scales are context)
        out = []
        for _, ks in groups:
            members = [k for k in ks if s["weighted"][k]] or ks
            vals = [values[k] for k in members if values[k] is not None]
            out.append(geomean(vals) if vals else None)
        return out

    def pooled_colour():
        out = []
        for _, ks in groups:
            marked = [colours[k] for k in ks if colours[k] not in (_PLAIN, "#d5dbdb")]
            out.append(marked[0] if marked else colours[ks[0]])
        return out

    horizontal = len(groups) > HORIZONTAL_FROM
    fig, (ax_r, ax_a) = (
        plt.subplots(1, 2, figsize=FIGSIZE, sharey=horizontal)
        if horizontal
        else plt.subplots(2, 1, figsize=FIGSIZE, sharex=True)
    )
    tips: dict[str, str] = {}
    rel, ab = pooled(s["relative"]), pooled(s["absolute"])
    bar_colours = pooled_colour()
    # the layer names once: left of the first panel (horizontal), under the second (vertical)
    _bars(ax_r, rel, bar_colours, labels, horizontal, tips, "ratio", f"‖∇W‖ / ‖∇W {s['last']}‖ =", labelled=horizontal)
    _bars(ax_a, ab, bar_colours, labels, horizontal, tips, "abs", "‖∇W‖ =", labelled=not horizontal)
    drew = _line(ax_r, pooled(s["predicted_relative"]), horizontal, tips, "pred-ratio", labels)
    drew = _line(ax_a, pooled(s["predicted"]), horizontal, tips, "pred-abs", labels) or drew
    _band(
        ax_r,
        t["vanishing-ratio"],
        t["exploding-ratio"],
        horizontal,
        f"vanishing < {t['vanishing-ratio']:.0e}",
        f"exploding > {t['exploding-ratio']:g}",
    )
    _band(
        ax_a,
        t["vanishing-absolute"],
        t["exploding-absolute"],
        horizontal,
        f"vanishing < {t['vanishing-absolute']:.0e}",
        f"exploding > {t['exploding-absolute']:.0e}",
    )
    _limits(ax_r, rel + pooled(s["predicted_relative"]), t["vanishing-ratio"], t["exploding-ratio"], horizontal)
    _limits(ax_a, ab + pooled(s["predicted"]), t["vanishing-absolute"], t["exploding-absolute"], horizontal)
    rel_label = f"‖∇W‖ / ‖∇W {s['last']}‖ (ratio test)"
    abs_label = "‖∇W‖ (absolute tests)"
    if horizontal:
        ax_r.set_xlabel(rel_label, fontsize=8)
        ax_a.set_xlabel(abs_label, fontsize=8)
        # beyond the layer names, which sit where the axis label would
        fig.text(
            0.005,
            0.5,
            "layers, execution order" + (" (blocks grouped)" if len(groups) < len(names) else ""),
            rotation=90,
            va="center",
            ha="left",
            fontsize=8,
        )
    else:
        ax_r.set_ylabel(rel_label, fontsize=8)
        ax_a.set_ylabel(abs_label, fontsize=8)
        fig.text(
            0.41,
            0.01,
            "parameterized layers, execution order" + (" (blocks grouped)" if len(groups) < len(names) else ""),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    hazard = (measurement.hazard or {}).get("hazard")
    hazard = {"none": "healthy", None: "?"}.get(hazard, hazard)
    fig.suptitle(
        f"{os.path.relpath(measurement.path)} · {measurement.name} · measured {hazard} · "
        f"{measurement.device}, {measurement.seeds} seed(s)",
        fontsize=9,
    )
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in legend.values()]
    labels_legend = list(legend)
    handles.append(plt.Rectangle((0, 0), 1, 1, color=_BAND, alpha=0.2))
    labels_legend.append("healthy band (thresholds)")
    if drew:
        handles.append(plt.Line2D([], [], color=_PREDICTED, linewidth=1.2, marker="o", markersize=3))
        labels_legend.append(PREDICTION_LABEL)
    fig.subplots_adjust(
        left=0.16 if horizontal else 0.08,
        right=0.74,
        top=0.90,
        bottom=0.10 if horizontal else 0.25,
        wspace=0.08,
        hspace=0.12,
    )
    _legend(fig, handles, labels_legend)
    _save(fig, path, tips)
    return {
        "kind": "flow",
        "layers": names,
        "measured": s["absolute"],
        "relative": s["relative"],
        "predicted": prediction_series(measurement, diagnostics),
        "bars": labels,
        "horizontal": horizontal,
    }


def symmetry_chart(measurement, raw: dict, diagnostic, thresholds: dict, path: Path) -> dict:
    """A constant-init finding's chart (``raw``: its probe's measurements): each weighted
    layer's row spread after the probe's SGD steps (the largest over the seeds, as the verdict
    takes it), execution order, with the symmetry threshold; the layers the finding names in its
    verdict colour."""
    plt = _plt()
    t = {**THRESHOLDS, **(thresholds or {})}
    seeds = raw.get("seeds") or []
    order = [n for n in measurement_order(measurement) if any(n in s.get("weight_rows_spread", {}) for s in seeds)]
    spread = [max(s["weight_rows_spread"].get(n, math.nan) for s in seeds) for n in order]
    named = set(dict(diagnostic.target).get("layers", ())) if diagnostic.target else set()
    verdict = dict(diagnostic.evidence).get("verdict", "inconclusive")
    colours = [_COLOURS.get(verdict, _PLAIN) if n in named else _PLAIN for n in order]
    fig, ax = plt.subplots(figsize=FIGSIZE)
    tips: dict[str, str] = {}
    horizontal = len(order) > HORIZONTAL_FROM
    shown = [max(v, 1e-17) if v == v else v for v in spread]  # an exact 0 (identical rows) on the log axis
    _bars(ax, shown, colours, order, horizontal, tips, "spread", "row spread")
    limit = t["symmetry"]
    (ax.axvline if horizontal else ax.axhline)(limit, color="#c0392b", linestyle="--", linewidth=0.9)
    (ax.axvspan if horizontal else ax.axhspan)(1e-18, limit, color="#c0392b", alpha=0.07, zorder=0)
    _limits(ax, shown, 1e-17, limit, horizontal)
    what = f"weight row spread after {seeds[0]['steps'] if seeds else '?'} SGD steps (max over seeds)"
    (ax.set_xlabel if horizontal else ax.set_ylabel)(what, fontsize=8)
    fig.suptitle(
        f"{os.path.relpath(measurement.path)} · {measurement.name} · {diagnostic.code} line {diagnostic.line}: "
        f"{verdict} (identical units at or below {limit:.0e}; an exact 0 is drawn at 1e-17)",
        fontsize=9,
    )
    handles = [
        plt.Rectangle((0, 0), 1, 1, color=_COLOURS.get(verdict, _PLAIN)),
        plt.Rectangle((0, 0), 1, 1, color=_PLAIN),
        plt.Rectangle((0, 0), 1, 1, color="#c0392b", alpha=0.2),
    ]
    fig.subplots_adjust(left=0.16 if horizontal else 0.08, right=0.74, top=0.90, bottom=0.10 if horizontal else 0.22)
    _legend(
        fig, handles, [f"{diagnostic.code}'s layers: {verdict}", "other weighted layers", "symmetric (identical rows)"]
    )
    _save(fig, path, tips)
    return {"kind": "symmetry", "layers": order, "measured": spread}


def training_chart(measurement, diagnostic, thresholds: dict, path: Path) -> dict:
    """A recurrent training finding's chart: the gradient norm per BPTT training step, raw
    (what backward gives) and clipped (what reaches the update), over the seeds (geometric
    mean), with the threshold."""
    plt = _plt()
    t = {**THRESHOLDS, **(thresholds or {})}
    ev = dict(diagnostic.evidence)
    steps = ev.get("per_step") or []
    xs = [s["step"] for s in steps]
    raw = [s["raw"] for s in steps]
    clipped = [s["clipped"] for s in steps]
    verdict = ev.get("verdict", "inconclusive")
    fig, ax = plt.subplots(figsize=FIGSIZE)
    tips: dict[str, str] = {}
    (a,) = ax.plot(xs, [_shown(v) for v in raw], color="#7f8c8d", marker="o", linewidth=1.2, label="raw ‖∇‖ (backward)")
    a.set_gid("raw")
    tips["raw"] = "raw: " + "; ".join(f"step {x} {_fmt(v)}" for x, v in zip(xs, raw))
    (b,) = ax.plot(
        xs,
        [_shown(v) for v in clipped],
        color=_COLOURS.get(verdict, _PLAIN),
        marker="s",
        linewidth=1.6,
        label="‖∇‖ at the update (clipped)",
    )
    b.set_gid("clipped")
    tips["clipped"] = "clipped: " + "; ".join(f"step {x} {_fmt(v)}" for x, v in zip(xs, clipped))
    limit = t["recurrent-exploding"]
    ax.axhline(limit, color="#c0392b", linestyle="--", linewidth=0.9, label=f"exploding > {limit:.0e}")
    ax.set_yscale("log")
    _limits(ax, raw + clipped, min([v for v in clipped if v and v == v] + [limit]), limit, False)
    ax.set_xlabel("training step (SGD, BPTT over the whole sequence)", fontsize=8)
    ax.set_ylabel("gradient norm (geometric mean over seeds)", fontsize=8)
    if xs:
        ax.set_xticks(xs)
    fig.suptitle(
        f"{os.path.relpath(measurement.path)} · {measurement.name} · {diagnostic.code} line {diagnostic.line}: "
        f"{verdict} · {ev.get('steps', '?')} steps of length {ev.get('sequence_length', '?')}"
        + (f", clipped by {ev['clip'][0]} at {ev['clip'][1]:g}" if ev.get("clip") else ", unclipped"),
        fontsize=9,
    )
    fig.subplots_adjust(left=0.08, right=0.74, top=0.90, bottom=0.12)
    handles, labels = ax.get_legend_handles_labels()
    _legend(fig, handles, labels)
    _save(fig, path, tips)
    return {"kind": "training", "steps": xs, "raw": raw, "clipped": clipped}
