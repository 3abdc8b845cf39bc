"""Wording and evidence helpers shared by rules (no rule lives here)."""

from __future__ import annotations


def describe_names(first: str, last: str) -> str:
    return first if first == last else f"{first} … {last}"


def format_factor(bounds: list[float], scales: list[float], estimate: float) -> str:
    """``up to 0.25^8 = 1.5e-05`` or ``about (0.25·0.58)^8 = 3.9e-09``."""
    n = len(bounds)
    same_bound = len(set(bounds)) == 1
    same_scale = len({round(s, 3) for s in scales}) == 1
    if same_bound and all(s >= 1.0 for s in scales):
        return f"up to {bounds[0]:.3g}^{n} = {estimate:.1e}"
    if same_bound and same_scale:
        return (
            f"about ({bounds[0]:.3g}·{scales[0]:.2f})^{n} = {estimate:.1e} "
            f"(derivative ≤ {bounds[0]:.3g}, weight-init scale {scales[0]:.2f} per layer)"
        )
    return f"about {estimate:.1e} (derivative bounds × weight-init scales over {n} layers)"


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
