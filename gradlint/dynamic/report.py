"""``--report DIR``: a gradient-flow chart per model (PNG) and one HTML page listing them.

Each chart shows the geometric mean over the seeds of every parameterized layer's weight-
gradient norm, in forward order, on a log axis; the band between the vanishing and the
exploding absolute thresholds is shaded; the layers a finding names (from its first to its
last layer) are drawn in the finding's verdict colour. Over the bars, a line with small markers
gives the static flow model's predicted ‖∇W‖ per layer (the first of the model's findings that
carries a prediction; same convention as the measurement), matched to the bars by layer name and
broken where a layer has no prediction; under each chart's findings table the page compares the
predicted and measured first/last ratio and first-layer norm. matplotlib (extra
``gradlint[dynamic]``) is imported here only, with the Agg backend (no display needed).
"""

from __future__ import annotations

import html
import math
import os
import re
from pathlib import Path

from gradlint.dynamic.verdict import THRESHOLDS, geomean

_COLOURS = {"confirmed": "#c0392b", "refuted": "#2e86c1", "inconclusive": "#b7950b"}
_PLAIN = "#95a5a6"
_PREDICTED = "#1b2631"
PREDICTION_LABEL = "predicted (static flow model)"


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


def chart(measurement, diagnostics, thresholds: dict, path: Path) -> dict:
    """Draw one model's chart to ``path`` (PNG); return what it plotted: ``layers`` (the bars'
    names, forward order), ``measured`` (their heights) and ``predicted`` (the prediction line,
    :func:`prediction_series`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = {**THRESHOLDS, **(thresholds or {})}
    names = [entry["name"] for entry in measurement.layers]
    values = [geomean(entry["norms"]) for entry in measurement.layers]
    floor = 1e-30
    shown = [v if (v == v and v > 0 and math.isfinite(v)) else floor for v in values]
    colours = [_PLAIN] * len(names)
    legend = {}
    for i in measurement.findings:
        d = diagnostics[i]
        ev = dict(d.evidence)
        verdict = ev.get("verdict", "inconclusive")
        layers = dict(d.target).get("layers", ())
        for k in _span(names, layers):
            colours[k] = _COLOURS.get(verdict, _PLAIN)
        legend[f"{d.code} line {d.line}: {verdict}"] = _COLOURS.get(verdict, _PLAIN)
    width = max(6.0, min(22.0, 0.22 * len(names) + 3))
    fig, ax = plt.subplots(figsize=(width, 4.2), dpi=110)
    ax.bar(range(len(names)), shown, color=colours, width=0.8)
    series = prediction_series(measurement, diagnostics)
    predicted = [v for _, v in series if v is not None]
    if predicted:  # NaN where a layer has no prediction: matplotlib breaks the line there
        ax.plot(range(len(series)), [math.nan if v is None else v for _, v in series], color=_PREDICTED,
                linewidth=1.2, marker="o", markersize=3, zorder=3)
    ax.set_yscale("log")
    low, high = t["vanishing-absolute"], t["exploding-absolute"]
    ax.axhspan(low, high, color="#27ae60", alpha=0.08, zorder=0, label="healthy band")
    ax.axhline(low, color="#27ae60", linestyle="--", linewidth=0.8)
    ax.axhline(high, color="#27ae60", linestyle="--", linewidth=0.8)
    ax.text(0.995, low, f" vanishing < {low:.0e}", transform=ax.get_yaxis_transform(), ha="right", va="top", fontsize=7, color="#1e8449")
    ax.text(0.995, high, f" exploding > {high:.0e}", transform=ax.get_yaxis_transform(), ha="right", va="bottom", fontsize=7, color="#1e8449")
    step = max(1, len(names) // 40)
    ax.set_xticks(range(0, len(names), step))
    ax.set_xticklabels([names[k] for k in range(0, len(names), step)], rotation=70, ha="right", fontsize=6)
    ax.set_ylabel("‖∇W‖ (geometric mean over seeds)")
    ax.set_xlabel("parameterized layers, forward order")
    ax.set_title(f"{os.path.relpath(measurement.path)} · {measurement.name} · {measurement.device}, "
                 f"{measurement.seeds} seed(s)", fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in legend.values()]
    labels = list(legend)
    if predicted:
        handles.append(plt.Line2D([], [], color=_PREDICTED, linewidth=1.2, marker="o", markersize=3))
        labels.append(PREDICTION_LABEL)
    if handles:  # outside the plot area, right of it: it never hides a bar
        ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  borderaxespad=0.0, framealpha=0.9)
    finite = [v for v in shown if v > floor] + predicted
    if finite:
        ax.set_ylim(min(min(finite), low) / 10, max(max(finite), high) * 10)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    return {"layers": names, "measured": values, "predicted": series}


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gradlint --dynamic report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
h2 {{ font-size: 1.05em; margin-top: 2em; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }}
.confirmed {{ color: #c0392b; font-weight: bold; }} .refuted {{ color: #2e86c1; font-weight: bold; }}
.inconclusive, .not-run {{ color: #b7950b; font-weight: bold; }}
img {{ max-width: 100%; border: 1px solid #eee; }}
.muted {{ color: #777; }}
.prediction {{ font-size: 0.9em; margin: 0.4em 0 0 0; }}
</style></head><body>
<h1>gradlint --dynamic</h1>
<p class="muted">{summary}</p>
{sections}
{skipped}
</body></html>
"""


def write_report(folder: str, outcome, thresholds: dict | None = None) -> Path:
    """Write one PNG per measured model and ``index.html``; return the page's path."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    diagnostics = outcome.diagnostics
    sections = []
    used = set()
    for m in outcome.models:
        base = _slug(f"{Path(m.path).stem}-{m.name}")
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base}-{n}"
        used.add(name)
        png = out / f"{name}.png"
        chart(m, diagnostics, thresholds or {}, png)
        rows = []
        for i in m.findings:
            d = diagnostics[i]
            ev = dict(d.evidence)
            verdict = ev.get("verdict", "")
            rows.append(
                f"<tr><td>{html.escape(d.path)}:{d.line}</td><td>{d.code}</td>"
                f"<td class=\"{html.escape(verdict)}\">{html.escape(verdict)}</td>"
                f"<td>{html.escape(d.message)}<br><span class=\"muted\">{html.escape(ev.get('summary', ''))}</span></td></tr>"
            )
        line = prediction_line(m, diagnostics)
        sections.append(
            f"<h2>{html.escape(os.path.relpath(m.path))} · <code>{html.escape(m.name)}</code></h2>"
            f"<p class=\"muted\">{len(m.layers)} parameterized layers, {m.seeds} seed(s) on {html.escape(str(m.device))}, "
            f"{m.seconds:.1f} s</p>"
            f"<img src=\"{html.escape(png.name)}\" alt=\"gradient-flow chart of {html.escape(m.name)}\">"
            f"<table><tr><th>where</th><th>rule</th><th>verdict</th><th>finding and measurement</th></tr>{''.join(rows)}</table>"
            + (f"<p class=\"prediction\">{html.escape(line)}</p>" if line else "")
        )
    skipped = ""
    if outcome.notes:
        items = "".join(f"<li>{html.escape(n)}</li>" for n in outcome.notes)
        skipped = f"<h2>Not measured</h2><ul>{items}</ul>"
    counts = {}
    for d in diagnostics:
        v = dict(d.evidence).get("verdict") if d.evidence else None
        if v:
            counts[v] = counts.get(v, 0) + 1
    summary = f"{len(outcome.models)} model(s) measured on {html.escape(str(outcome.device))}; " + (
        ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) or "no findings to measure")
    page = _PAGE.format(summary=summary, sections="\n".join(sections) or "<p>No model was measured.</p>", skipped=skipped)
    index = out / "index.html"
    tmp = out / ".index.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, index)
    return index
