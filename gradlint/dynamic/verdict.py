"""Verdicts: the worker's raw measurements against the thresholds of THEORY.md.

Pure Python (the parent process never imports torch). Every verdict carries the numbers it
rests on and the thresholds it used; a ratio test and an absolute test are applied together,
because a ratio alone misses uniform vanishing (every layer's gradient tiny, first/last ≈ 1)
and uniform explosion (the weight-gradient ratio of an N(0, 1) ReLU stack stays near 1 while
every norm is astronomically large).
"""

from __future__ import annotations

import math

#: defaults, shared with the static flow model; ``[tool.gradlint.dynamic.thresholds]`` overrides them
from gradlint.flow.convention import THRESHOLDS, classify_seeds  # noqa: E402

CONFIRMED, REFUTED, INCONCLUSIVE = "confirmed", "refuted", "inconclusive"


def geomean(values) -> float:
    values = list(values)
    if not values:
        return float("nan")
    if any(not math.isfinite(v) for v in values):
        return float("inf") if any(v == float("inf") or v != v for v in values) else float("nan")
    if any(v <= 0 for v in values):
        return 0.0
    return math.exp(sum(math.log(v) for v in values) / len(values))


def _fmt(x: float) -> str:
    if x != x:
        return "nan"
    if x in (float("inf"), float("-inf")):
        return "inf"
    return f"{x:.1e}"


def _norms(layers: list[dict], name: str, key: str = "norms") -> list[float] | None:
    for entry in layers:
        if entry["name"] == name:
            return entry.get(key)
    return None


def judge(expect: str, layers_named: tuple, measured: dict, raw: dict, thresholds: dict) -> tuple[str, dict, str]:
    """``(verdict, numbers, text)`` for one finding; ``measured`` is the model's entry of the
    worker's result, ``raw`` the probe's own measurements."""
    t = {**THRESHOLDS, **(thresholds or {})}
    if expect in ("vanishing", "exploding"):
        return _stack(expect, layers_named, measured["layers"], t)
    if expect == "dead":
        return _dead(layers_named, measured["layers"])
    if expect in ("symmetric", "starved"):
        return _symmetric(layers_named, raw, t, starved=expect == "starved")
    if expect == "recurrent-vanishing":
        return _through_time(layers_named, raw, t)
    if expect == "recurrent-exploding":
        return _training(raw, t)
    if expect == "degradation":
        return INCONCLUSIVE, {}, (
            "inconclusive: the degradation of very deep plain networks is an optimization "
            "difficulty, which one backward pass at initialization cannot show"
        )
    return INCONCLUSIVE, {}, f"inconclusive: nothing to measure for `{expect}`"


def _ratios(a, b):
    return [x / y if y > 0 else (float("inf") if x > 0 else float("nan")) for x, y in zip(a, b)]


def _stack(expect, names, layers, t):
    if len(names) < 2:
        return INCONCLUSIVE, {}, "inconclusive: the finding names no first and last layer to compare"
    first, last = names[0], names[-1]
    a, b = _norms(layers, first), _norms(layers, last)
    if a is None or b is None:
        missing = first if a is None else last
        return INCONCLUSIVE, {}, f"inconclusive: no parameterized module `{missing}` in the built model"
    ratio, absolute = geomean(_ratios(a, b)), geomean(a)
    oa, ob = _norms(layers, first, "output_norms"), _norms(layers, last, "output_norms")
    gain = geomean(_ratios(oa, ob)) if oa and ob and all(v == v for v in oa + ob) else float("nan")
    finite = all(math.isfinite(v) for v in a + b)
    # the whole gradient, seed by seed: every measured layer's norm in quadrature
    totals = []
    for i in range(len(a)):
        sq = [entry["norms"][i] for entry in layers if i < len(entry.get("norms") or ())]
        totals.append(math.sqrt(sum(v * v for v in sq)) if all(math.isfinite(v) for v in sq) else float("inf"))
    total = geomean(totals)
    # the tests the static flow model applies, seed by seed, the class most seeds show
    per_seed = [{"ratio": x / y if y > 0 else (float("inf") if x > 0 else float("nan")), "first": x,
                 "total": tot, "finite": math.isfinite(x) and math.isfinite(y) and math.isfinite(tot)}
                for x, y, tot in zip(a, b, totals)]
    measured_hazard, test = classify_seeds(per_seed, t)
    numbers = {"first_layer": first, "last_layer": last, "ratio": ratio, "first_grad_norm": absolute,
               "last_grad_norm": geomean(b), "total_grad_norm": total, "backward_gain": gain, "finite": finite,
               "measured_hazard": str(measured_hazard), "test": test}
    if expect == "vanishing":
        limits = {"ratio": t["vanishing-ratio"], "absolute": t["vanishing-absolute"]}
    else:
        limits = {"ratio": t["exploding-ratio"], "absolute": t["exploding-absolute"], "total": t["exploding-total"]}
    numbers["thresholds"] = limits
    if ratio != ratio and finite:
        return INCONCLUSIVE, numbers, f"inconclusive: ‖∇{first}‖ and ‖∇{last}‖ are both 0"
    verdict = CONFIRMED if str(measured_hazard) == expect else REFUTED
    text = (f"‖∇{first}‖ / ‖∇{last}‖ = {_fmt(ratio)} (threshold {_fmt(limits['ratio'])}), "
            f"‖∇{first}‖ = {_fmt(absolute)} (threshold {_fmt(limits['absolute'])})")
    if expect == "exploding":
        text += f", whole gradient {_fmt(total)} (threshold {_fmt(limits['total'])})"
    if not finite:
        text += ", non-finite gradients"
    if verdict == REFUTED:
        text += f"; measured {measured_hazard}" + (f" by its {test} test" if test else "")
    return verdict, numbers, text


def _symmetric(names, raw, t, starved=False):
    seeds = raw.get("seeds") or []
    if not seeds:
        return INCONCLUSIVE, {}, "inconclusive: nothing was measured"
    limit = t["symmetry"]
    s0 = seeds[0]
    spreads = {n: max(s["weight_rows_spread"].get(n, float("nan")) for s in seeds) for n in names}
    symmetric = [n for n, v in spreads.items() if v == v and v <= limit]
    blocked = all(s["upstream_blocked"] for s in seeds)
    numbers = {"layers": list(names), "weight_rows_spread": spreads, "symmetric_layers": symmetric,
               "upstream_blocked": blocked, "steps": s0["steps"], "thresholds": {"symmetry": limit}}
    parts = []
    if symmetric:
        parts.append(f"{len(symmetric)} of {len(names)} layers keep identical rows after {s0['steps']} SGD steps "
                     f"(row spread ≤ {_fmt(limit)})")
    else:
        worst = min((v for v in spreads.values() if v == v), default=float("nan"))
        parts.append(f"rows differ after {s0['steps']} SGD steps (smallest row spread {_fmt(worst)}, "
                     f"threshold {_fmt(limit)})")
    if blocked:
        parts.append(f"the gradient to the {s0['upstream']} layer(s) before is exactly 0")
    if starved and not symmetric:
        cos = {n: min(s.get("weight_rows_cosine", {}).get(n, float("nan")) for s in seeds) for n in names}
        alike = [n for n, v in cos.items() if v == v and v >= t["starved-cosine"]]
        numbers["weight_rows_cosine"] = cos
        numbers["thresholds"]["starved-cosine"] = t["starved-cosine"]
        low = min((v for v in cos.values() if v == v), default=float("nan"))
        parts.append(f"smallest cosine of a row to the mean row {low:.3f} (threshold {t['starved-cosine']:g})")
        return (CONFIRMED if alike or blocked else REFUTED), numbers, ", ".join(parts)
    verdict = CONFIRMED if symmetric or blocked else REFUTED
    return verdict, numbers, ", ".join(parts)


def _through_time(names, raw, t):
    seeds = raw.get("seeds") or []
    if not seeds:
        return INCONCLUSIVE, {}, "inconclusive: nothing was measured"
    ratios = [s["first_step"] / s["last_step"] if s["last_step"] > 0 else float("nan") for s in seeds]
    ratio = geomean(ratios)
    limit = t["recurrent-vanishing"]
    length = seeds[0]["length"]
    numbers = {"layer": names[0] if names else None, "ratio": ratio, "sequence_length": length,
               "thresholds": {"ratio": limit}}
    if ratio != ratio:
        return INCONCLUSIVE, numbers, "inconclusive: no gradient reached the last time step"
    text = (f"over {length} steps, ‖∂L/∂x_1‖ / ‖∂L/∂x_{length}‖ at `{names[0] if names else '?'}` = "
            f"{_fmt(ratio)} (threshold {_fmt(limit)})")
    explodes = ratio > 1 / limit
    if explodes:
        text += ": it explodes through time rather than vanishing"
    return (CONFIRMED if ratio < limit or explodes else REFUTED), numbers, text


def _training(raw, t):
    seeds = raw.get("seeds") or []
    if not seeds:
        return INCONCLUSIVE, {}, "inconclusive: nothing was measured"
    all_norms = [n for s in seeds for n in s["norms"]]
    finite = all(math.isfinite(n) for n in all_norms)
    largest = max(all_norms) if finite else float("inf")
    limit = t["recurrent-exploding"]
    s0 = seeds[0]
    numbers = {"max_grad_norm": largest, "finite": finite, "steps": s0["steps"], "sequence_length": s0["length"],
               "clip": s0.get("clip"), "thresholds": {"max_grad_norm": limit}}
    how = f"{s0['steps']} BPTT steps of length {s0['length']}"
    if s0.get("clip"):
        how += f", clipped by {s0['clip'][0]} at {s0['clip'][1]:g} as the loop does"
    text = f"{how}: max ‖∇‖ = {_fmt(largest)} (threshold {_fmt(limit)})"
    if not finite:
        text += ", non-finite gradients"
    return (CONFIRMED if not finite or largest > limit else REFUTED), numbers, text


def _dead(names, layers):
    """Born dead: every weighted layer before the last gets an exactly-zero gradient, in most seeds."""
    if not layers:
        return INCONCLUSIVE, {}, "inconclusive: no parameterized module was measured"
    below = layers[:-1] if len(layers) > 1 else layers
    seeds = len(below[0]["norms"])
    dead_seeds = sum(1 for i in range(seeds) if all(entry["norms"][i] == 0.0 for entry in below))
    numbers = {"dead_seeds": dead_seeds, "seeds": seeds, "layers": len(below)}
    text = (f"every gradient below `{layers[-1]['name']}` is exactly 0 in {dead_seeds} of {seeds} seeds "
            f"({len(below)} layers)")
    return (CONFIRMED if dead_seeds * 2 > seeds else REFUTED), numbers, text
