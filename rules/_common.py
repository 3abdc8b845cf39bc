"""Wording and evidence helpers shared by rules (no rule lives here)."""

from __future__ import annotations


def describe_names(first: str, last: str) -> str:
    return first if first == last else f"{first} … {last}"


def format_factor(bounds: list[float], scales: list[float], estimate: float) -> str:
    """How the estimate was made: ``up to 0.25^8 = 1.5e-05``, ``about (0.25·0.58)^8 = 3.9e-09``."""
    n = len(bounds)
    lo, hi = min(scales), max(scales)
    scale_range = f"{lo:.2f}" if round(lo, 2) == round(hi, 2) else f"{lo:.2f}–{hi:.2f}"
    product = 1.0
    for s in scales:
        product *= s
    if len(set(bounds)) == 1:
        b = bounds[0]
        if lo >= 1.0:
            return f"up to {b:.3g}^{n} = {estimate:.1e}"
        if round(lo, 2) == round(hi, 2):
            return f"about ({b:.3g}·{lo:.2f})^{n} = {estimate:.1e} (derivative ≤ {b:.3g}, weight-init scale {lo:.2f} per layer)"
        return (
            f"about {b:.3g}^{n} × {product:.2g} = {estimate:.1e} "
            f"(derivative ≤ {b:.3g}, weight-init scale {scale_range} per layer)"
        )
    return (
        f"about {estimate:.1e} (derivative bounds {min(bounds):.3g}–{max(bounds):.3g} "
        f"and weight-init scales {scale_range} over {n} layers)"
    )


def repeat_related(ctx, layers) -> list:
    """Related locations for the constants that set how often layers repeat."""
    out, seen = [], set()
    for layer in layers:
        for prov in layer.repeat:
            key = (prov.name, prov.line)
            if key not in seen:
                seen.add(key)
                out.append(ctx.related(None, f"{prov.name} = {prov.value!r}", line=prov.line))
    return out


def confidence_of(graph) -> str:
    """``inferred`` when the builder resolved everything, ``heuristic`` otherwise."""
    return "heuristic" if graph.unknowns else "inferred"
