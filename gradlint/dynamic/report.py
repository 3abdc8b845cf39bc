"""``--report DIR``: gradient-flow charts per model (SVG) and one HTML page listing them.

Every measured model is charted, the healthy ones too, and each chart plots what its verdicts
used:

- **flow** (every model): the weight-gradient norm of each parameterized layer, in the
  execution order the forward hooks recorded, in two panels. The first is normalized to the
  last weighted layer (‖∇W_l‖ / ‖∇W_last‖, seed by seed, geometric mean), with the band
  between the vanishing and exploding *ratio* thresholds shaded: the ratio test. The second
  gives the absolute norms with the band of the absolute thresholds. The static flow model's
  prediction is a line over the bars (normalized the same way in the first panel), matched to
  the bars by layer name and broken where a layer has no prediction. Past
  :data:`HORIZONTAL_FROM` layers the bars are horizontal; past :data:`GROUP_FROM`, repeated
  blocks are grouped (one bar per block, its geometric mean), so labels stay readable.
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
import re
from pathlib import Path

from gradlint.dynamic.verdict import THRESHOLDS, geomean
from gradlint.text import write_atomic
from gradlint.vocab import Probe

_COLOURS = {"confirmed": "#c0392b", "refuted": "#2e86c1", "inconclusive": "#b7950b", "not-run": "#b7950b"}
_PLAIN = "#95a5a6"
_PREDICTED = "#1b2631"
_BAND = "#27ae60"
PREDICTION_LABEL = "predicted (static flow model)"
#: every chart's size, in inches
FIGSIZE = (12.0, 6.5)
HORIZONTAL_FROM = 40
GROUP_FROM = 60
_FLOOR = 1e-30


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "model"


def _span(names: list[str], layers: tuple) -> range:
    if not layers:
        return range(0)
    idx = [names.index(n) for n in (layers[0], layers[-1]) if n in names]
    if not idx:
        return range(0)
    return range(min(idx), max(idx) + 1)


def _positive(v) -> float | None:
    """``v`` as a float when it can sit on a log axis (finite, > 0), else None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if (math.isfinite(v) and v > 0) else None


def _fmt(x: float) -> str:
    return f"{x:.1e}"


def model_prediction(measurement, diagnostics) -> dict:
    """The prediction (a dict, ``layers`` as (name, grad_norm) pairs) of the first of the
    model's findings that carries one; ``{}`` when none does."""
    for i in measurement.findings:
        prediction = getattr(diagnostics[i], "prediction", ())
        if prediction:
            return dict(prediction)
    return {}


def prediction_series(measurement, diagnostics) -> list[tuple[str, float | None]]:
    """One ``(layer name, predicted ‖∇W‖ or None)`` per bar of the chart, in the bars' order:
    the prediction matched to the measured layers by name; None where the flow model predicts
    nothing for a layer (or nothing a log axis can show), and everywhere when no finding of the
    model carries a prediction. The chart's prediction line is drawn from exactly this."""
    predicted = {}
    for name, norm in model_prediction(measurement, diagnostics).get("layers") or ():
        predicted.setdefault(name, _positive(norm))
    return [(entry["name"], predicted.get(entry["name"])) for entry in measurement.layers]


def _norms(measurement, name: str):
    for entry in measurement.layers:
        if entry["name"] == name:
            return list(entry.get("norms") or ())
    return None


def prediction_comparison(measurement, diagnostics) -> dict:
    """Predicted against measured numbers for the page: ``first_layer``/``last_layer`` (the
    layers the prediction's ratio compares: its first and last predicted layer), and for
    ``ratio`` (‖∇W first‖ / ‖∇W last‖) and ``first`` (‖∇W first‖) a ``(predicted, measured)``
    pair each where both are known. The measured ratio is the geometric mean over the seeds of
    the per-seed ratios, as the verdicts compute it."""
    pred = model_prediction(measurement, diagnostics)
    layers = pred.get("layers") or ()
    if not layers:
        return {}
    first, last = layers[0][0], layers[-1][0]
    out = {"first_layer": first, "last_layer": last}
    a, b = _norms(measurement, first), _norms(measurement, last)
    if a and b and len(layers) >= 2:
        ratios = [x / y if y > 0 else (math.inf if x > 0 else math.nan) for x, y in zip(a, b)]
        measured, predicted = geomean(ratios), pred.get("ratio")
        if _positive(predicted) is not None and math.isfinite(measured):
            out["ratio"] = (float(predicted), measured)
    if a:
        measured, predicted = geomean(a), pred.get("first")
        if _positive(predicted) is not None and math.isfinite(measured):
            out["first"] = (float(predicted), measured)
    return out


def prediction_line(measurement, diagnostics) -> str:
    """The page's one line comparing prediction and measurement ('' when nothing to compare)."""
    c = prediction_comparison(measurement, diagnostics)
    parts = []
    if "ratio" in c:
        p, m = c["ratio"]
        parts.append(f"predicted ‖∇W {c['first_layer']}‖/‖∇W {c['last_layer']}‖ {_fmt(p)}, measured {_fmt(m)}")
    if "first" in c:
        p, m = c["first"]
        parts.append(f"predicted ‖∇W {c['first_layer']}‖ {_fmt(p)}, measured {_fmt(m)}")
    return "; ".join(parts)


# ---------------------------------------------------------------- the numbers each chart plots
def _reference(measurement) -> str | None:
    """The last weighted layer: what the ratio panel normalizes to (as the ratio test does)."""
    weighted = [e["name"] for e in measurement.layers if e.get("weighted", True)]
    return weighted[-1] if weighted else (measurement.layers[-1]["name"] if measurement.layers else None)


def flow_series(measurement, diagnostics) -> dict:
    """What the flow chart plots, bar by bar in execution order: ``layers``, ``absolute``
    (geometric mean over the seeds of ‖∇W‖), ``relative`` (geometric mean over the seeds of
    ‖∇W_l‖ / ‖∇W_last‖, ``last`` the last weighted layer), ``predicted`` and
    ``predicted_relative`` (the flow model's, None where it has none), ``weighted`` flags."""
    names = [e["name"] for e in measurement.layers]
    ref = _reference(measurement)
    ref_norms = _norms(measurement, ref) if ref else None
    absolute, relative = [], []
    for e in measurement.layers:
        norms = list(e.get("norms") or ())
        absolute.append(geomean(norms))
        if ref_norms:
            ratios = [x / y if y > 0 else (math.inf if x > 0 else math.nan) for x, y in zip(norms, ref_norms)]
            relative.append(geomean(ratios))
        else:
            relative.append(math.nan)
    predicted = [v for _, v in prediction_series(measurement, diagnostics)]
    p_ref = predicted[names.index(ref)] if ref in names else None
    predicted_relative = [v / p_ref if (v is not None and p_ref) else None for v in predicted]
    return {
        "layers": names,
        "absolute": absolute,
        "relative": relative,
        "predicted": predicted,
        "predicted_relative": predicted_relative,
        "last": ref,
        "weighted": [bool(e.get("weighted", True)) for e in measurement.layers],
    }


def _group(names: list[str]) -> list[tuple[str, list[int]]]:
    """Consecutive layers of one repeated block (the name up to its first numeric part:
    ``layers.3`` of ``layers.3.attn.q``) as one group; then, while there are still more than
    :data:`GROUP_FROM` groups, neighbours merged in equal runs."""
    groups: list[tuple[str, list[int]]] = []
    for k, name in enumerate(names):
        parts = name.split(".")
        cut = next((i for i, p in enumerate(parts) if p.isdigit()), None)
        key = ".".join(parts[: cut + 1]) if cut is not None and cut + 1 < len(parts) else name
        if groups and groups[-1][0] == key:
            groups[-1][1].append(k)
        else:
            groups.append((key, [k]))
    if len(groups) > GROUP_FROM:
        size = math.ceil(len(groups) / GROUP_FROM)
        merged = []
        for i in range(0, len(groups), size):
            run = groups[i : i + size]
            label = run[0][0] if len(run) == 1 else f"{run[0][0]} … {run[-1][0]}"
            merged.append((label, [k for _, ks in run for k in ks]))
        groups = merged
    return [(label if len(ks) == 1 else f"{label} ({len(ks)})", ks) for label, ks in groups]


def _label(name: str, width: int = 26) -> str:
    """A bar's label: a long module path keeps its end (the part that tells layers apart)."""
    return name if len(name) <= width else "…" + name[-(width - 1) :]


def _shown(v) -> float:
    return v if (v is not None and v == v and v > 0 and math.isfinite(v)) else _FLOOR


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


def measurement_order(measurement) -> list[str]:
    """The parameterized layers in execution order (the bars' order)."""
    return [e["name"] for e in measurement.layers]


# ---------------------------------------------------------------- the page
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gradlint --dynamic report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1200px; }}
h2 {{ font-size: 1.05em; margin-top: 2.2em; border-top: 1px solid #ddd; padding-top: 1em; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }}
.confirmed {{ color: #c0392b; font-weight: bold; }} .refuted {{ color: #2e86c1; font-weight: bold; }}
.inconclusive, .not-run {{ color: #b7950b; font-weight: bold; }}
.healthy {{ color: #1e8449; }} .vanishing, .exploding, .dead {{ color: #c0392b; }}
object {{ width: 100%; aspect-ratio: {aspect}; border: 1px solid #eee; display: block; }}
.muted {{ color: #777; }}
code {{ background: #f4f6f6; padding: 0 0.2em; border-radius: 3px; }}
.prediction {{ font-size: 0.9em; margin: 0.4em 0 0 0; }}
</style></head><body>
<h1>gradlint --dynamic</h1>
<p class="muted">{summary}</p>
{overview}
{sections}
{skipped}
</body></html>
"""


def _draw_one(task) -> str:
    func, args = task
    func(*args)
    return args[-1].name


def _pool(workers: int):
    """A pool of chart drawers forked from this process with matplotlib already imported
    (called once the measurement is over: no other thread of gradlint runs then); None where
    none can start."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    _plt()
    try:
        return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))
    except (OSError, ValueError, RuntimeError, ImportError):
        return None


def markdown(text: str) -> str:
    """The inline markdown of gradlint's messages as HTML: `code` spans (escaped first)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text, quote=False))


def _embed(name: str, alt: str) -> str:
    # <object>, not <img>: the SVG's tooltips then show on hover
    return (
        f'<object type="image/svg+xml" data="{html.escape(name)}" aria-label="{html.escape(alt)}">'
        f'<img src="{html.escape(name)}" alt="{html.escape(alt)}"></object>'
    )


class ReportWriter:
    """``--report DIR``: :meth:`add` queues models' charts (drawn by a pool of processes, on
    every core), :meth:`finish` waits for them and writes ``index.html``."""

    def __init__(self, folder: str, thresholds: dict | None = None, parallel: bool = True):
        self.out = Path(folder)
        self.out.mkdir(parents=True, exist_ok=True)
        self.thresholds = thresholds or {}
        self.used: set[str] = set()
        self.charts: dict[int, tuple[str, list]] = {}  # id(measurement) -> (name, [(file, what)])
        self.written: list[str] = []
        self.futures: list = []
        self.pool = _pool(os.cpu_count() or 1) if parallel and (os.cpu_count() or 1) > 1 else None

    def add(self, models, diagnostics) -> None:
        """Queue the charts of ``models`` (their findings' verdicts final)."""
        for m in models:
            base = _slug(f"{Path(m.path).stem}-{m.name}")
            name, n = base, 1
            while name in self.used:
                n += 1
                name = f"{base}-{n}"
            self.used.add(name)
            mine = {i: diagnostics[i] for i in m.findings}  # what the charts read, not the whole run
            tasks = [(chart, (m, mine, self.thresholds, self.out / f"{name}.svg"))]
            charts = [(f"{name}.svg", "gradient flow")]
            for i in m.findings:
                d = diagnostics[i]
                expect = dict(d.target).get("expect") if d.target else None
                file = f"{name}-{d.code}-line{d.line}.svg"
                if expect in (Probe.SYMMETRIC, Probe.STARVED) and i in m.probes:
                    tasks.append((symmetry_chart, (m, m.probes[i], d, self.thresholds, self.out / file)))
                    charts.append((file, f"{d.code}: row spread"))
                elif expect == Probe.RECURRENT_EXPLODING and d.evidence and dict(d.evidence).get("per_step"):
                    tasks.append((training_chart, (m, d, self.thresholds, self.out / file)))
                    charts.append((file, f"{d.code}: gradient norm per training step"))
            self.charts[id(m)] = (name, charts)
            self.written.extend(file for file, _ in charts)
            for task in tasks:
                self.futures.append(self._submit(task))

    def _submit(self, task):
        if self.pool is not None:
            try:
                return self.pool.submit(_draw_one, task)
            except (OSError, RuntimeError):  # the pool broke: draw here from now on
                self.pool = None
        _draw_one(task)
        return None

    def finish(self, outcome) -> Path:
        """Wait for the charts and write ``index.html``; return its path."""
        try:
            for future in self.futures:
                if future is not None:
                    future.result()
        finally:
            if self.pool is not None:
                self.pool.shutdown()
        return self._page(outcome)

    def _page(self, outcome) -> Path:
        diagnostics = outcome.diagnostics
        sections, rows = [], []
        for m in outcome.models:
            if id(m) not in self.charts:
                self.add([m], diagnostics)  # measured, but never handed to add(): drawn here
                for future in self.futures[-len(self.charts[id(m)][1]) :]:
                    if future is not None:
                        future.result()
            name, charts = self.charts[id(m)]
            finding_rows = []
            verdicts = []
            for i in m.findings:
                d = diagnostics[i]
                ev = dict(d.evidence)
                verdict = ev.get("verdict", "")
                verdicts.append(f'{d.code} <span class="{html.escape(verdict)}">{html.escape(verdict)}</span>')
                finding_rows.append(
                    f"<tr><td>{html.escape(d.path)}:{d.line}</td><td>{d.code}</td>"
                    f'<td class="{html.escape(verdict)}">{html.escape(verdict)}</td>'
                    f"<td>{markdown(d.message)}<br><span"
                    f' class="muted">{markdown(ev.get("summary", ""))}</span></td></tr>'
                )
            hazard = m.hazard or {}
            h = hazard.get("hazard", "unknown")
            h = "healthy" if h == "none" else h
            recovered = (getattr(m, "recovered", None) or {}).get("seeds") or ()
            after = (
                f", flows after {m.recovered.get('steps', 3)} SGD steps"
                if h == "dead" and len(recovered) * 2 > m.seeds
                else ""
            )
            anchor = f"m-{name}"
            rows.append(
                f'<tr><td><a href="#{anchor}">{html.escape(os.path.relpath(m.path))} ·'
                f" <code>{html.escape(m.name)}</code></a></td>"
                f'<td class="{html.escape(h)}">{html.escape(h)}{_test_note(hazard, after)}</td>'
                f"<td>{', '.join(verdicts) or '<span class=muted>no static finding</span>'}</td>"
                f"<td>{len(m.layers)}</td><td>{m.seconds:.1f} s</td></tr>"
            )
            line = prediction_line(m, diagnostics)
            table = (
                (
                    f"<table><tr><th>where</th><th>rule</th><th>verdict</th><th>finding and measurement</th></tr>"
                    f"{''.join(finding_rows)}</table>"
                )
                if finding_rows
                else ""
            )
            sections.append(
                f'<h2 id="{anchor}">{html.escape(os.path.relpath(m.path))} · <code>{html.escape(m.name)}</code> · '
                f'measured <span class="{html.escape(h)}">{html.escape(h)}</span></h2>'
                f'<p class="muted">{len(m.layers)} parameterized layers, {m.seeds} seed(s) on'
                f" {html.escape(str(m.device))}, "
                f"{m.seconds:.1f} s</p>"
                + "".join(_embed(file, f"{what} of {m.name}") for file, what in charts)
                + table
                + (f'<p class="prediction">{html.escape(line)}</p>' if line else "")
            )
        skipped = ""
        missing = list(outcome.notes) + list(getattr(outcome, "unmeasured", ()))
        if missing:
            items = "".join(f"<li>{markdown(n)}</li>" for n in missing)
            skipped = f"<h2>Not measured</h2><ul>{items}</ul>"
        counts = {}
        for d in diagnostics:
            v = dict(d.evidence).get("verdict") if d.evidence else None
            if v:
                counts[v] = counts.get(v, 0) + 1
        summary = f"{len(outcome.models)} model(s) measured on {html.escape(str(outcome.device))}; " + (
            ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) or "no findings to measure"
        )
        overview = (
            (
                "<table><tr><th>model</th><th>measured</th><th>findings</th><th>layers</th><th>time</th></tr>"
                + "".join(rows)
                + "</table>"
            )
            if rows
            else ""
        )
        page = _PAGE.format(
            aspect=f"{FIGSIZE[0]:g} / {FIGSIZE[1]:g}",
            summary=summary,
            overview=overview,
            sections="\n".join(sections) or "<p>No model was measured.</p>",
            skipped=skipped,
        )
        index = self.out / "index.html"
        write_atomic(str(index), page.encode("utf-8"))
        return index


def write_report(folder: str, outcome, thresholds: dict | None = None, written: list | None = None) -> Path:
    """Write the charts of every measured model (SVG) and ``index.html``; return the page's
    path. The chart files' names are appended to ``written`` when it is given."""
    writer = ReportWriter(folder, thresholds, parallel=len(outcome.models) >= PARALLEL_FROM)
    writer.add(outcome.models, outcome.diagnostics)
    index = writer.finish(outcome)
    if written is not None:
        written.extend(writer.written)
    return index


#: fewer models than this are drawn in this process (a pool costs more than it saves)
PARALLEL_FROM = 8


def _test_note(hazard: dict, after: str) -> str:
    """`` (ratio test, …)`` after a measured class in the report's table, or nothing."""
    return f" ({html.escape(str(hazard['test']))} test{after})" if hazard.get("test") else ""
