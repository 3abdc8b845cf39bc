"""``--report DIR``: the numbers each chart plots, and the static prediction compared with the
measurement; pure arithmetic over a model's measurement and its findings (no matplotlib), read
by the charts (:mod:`gradlint.dynamic.charts`) and the page (:mod:`gradlint.dynamic.report`).
"""

from __future__ import annotations

import math

from gradlint.dynamic.verdict import geomean

GROUP_FROM = 60
_FLOOR = 1e-30


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


def measurement_order(measurement) -> list[str]:
    """The parameterized layers in execution order (the bars' order)."""
    return [e["name"] for e in measurement.layers]
