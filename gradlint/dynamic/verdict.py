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
from gradlint.vocab import Hazard, Probe, Verdict

CONFIRMED, REFUTED, INCONCLUSIVE = Verdict.CONFIRMED, Verdict.REFUTED, Verdict.INCONCLUSIVE


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


def judge(
    expect: Probe, layers_named: tuple, measured: dict, raw: dict, thresholds: dict, claim: Hazard = Hazard.NONE
) -> tuple[Verdict, dict, str]:
    """``(verdict, numbers, text)`` for one finding; ``measured`` is the model's entry of the
    worker's result, ``raw`` the probe's own measurements. Every verdict names the test that
    decided it (``decided_by``) and the hazard class the whole model measures."""
    t = {**THRESHOLDS, **(thresholds or {})}
    layers_named, mapped, missing = resolve_layers(layers_named, measured)
    if missing:
        verdict, numbers, text = INCONCLUSIVE, {}, f"inconclusive: {missing}"
    elif expect in (Probe.VANISHING, Probe.EXPLODING, Probe.DEGRADATION):
        verdict, numbers, text = _stack(Probe(expect), layers_named, measured["layers"], t)
    elif expect == Probe.DEAD:
        verdict, numbers, text = _dead(layers_named, measured["layers"])
    elif expect in (Probe.SYMMETRIC, Probe.STARVED):
        verdict, numbers, text = _symmetric(layers_named, raw, t, starved=expect == Probe.STARVED)
    elif expect == Probe.RECURRENT_VANISHING:
        verdict, numbers, text = _through_time(layers_named, raw, t)
    elif expect == Probe.RECURRENT_EXPLODING:
        verdict, numbers, text = _training(raw, t)
    else:
        verdict, numbers, text = INCONCLUSIVE, {}, f"inconclusive: nothing to measure for `{expect}`"
    if mapped:
        numbers["mapped_layers"] = mapped
    model = model_class(measured.get("layers") or [], t)
    if (
        verdict == REFUTED
        and expect in (Probe.SYMMETRIC, Probe.STARVED)
        and claim in (Hazard.DEAD, Hazard.VANISHING)
        and model["hazard"] == claim
    ):
        # a constant init whose units do come apart, but whose claim of a dead (or vanishing)
        # gradient at initialization the whole model's measurement bears out
        verdict = CONFIRMED
        numbers["decided_by"] = model["test"]
        text += f"; confirmed as {claim} at initialization by the model's {model['test']} test"
    numbers.setdefault("decided_by", None)
    numbers["model_hazard"] = model["hazard"]
    numbers["model_test"] = model["test"]
    if model.get("leaves_band_at"):
        numbers["leaves_band_at"] = model["leaves_band_at"]
    same = (numbers.get("first_layer"), numbers.get("last_layer"), numbers.get("measured_hazard")) == (
        model.get("first_layer"),
        model.get("last_layer"),
        model["hazard"],
    )
    if same:  # the finding's layers are the model's: only where the gradient leaves the band is new
        if model.get("leaves_band_at"):
            text += f"; the gradient leaves the healthy band at `{model['leaves_band_at']}`"
    elif model["hazard"] != "unknown":
        text += f"; the model measures {describe_class(model, t)}"
    return verdict, numbers, text


def resolve_layers(names: tuple, measured: dict) -> tuple[tuple, dict, str | None]:
    """The static layer names mapped onto the built model's parameterized modules:
    ``(names, {static: measured}, why-not)``. A module without parameters of its own (an
    activation, ``blocks.8.act``) stands for the nearest parameterized module in execution
    order (the next one for the first layer, the one before for the last); a container
    (``blocks.8``) for its first or last parameterized descendant."""
    layers = [e["name"] for e in measured.get("layers") or ()]
    modules = list(measured.get("modules") or ())
    known = set(layers)
    out, mapped = [], {}
    for k, name in enumerate(names):
        if name in known:
            out.append(name)
            continue
        first = k == 0 and len(names) > 1
        found = None
        head, _, rest = name.partition(".")
        if rest and (rest in known or rest in modules):
            # a model a script builds in place (``tower = nn.Sequential(...)``): the static graph
            # names its layers after the variable (``tower.0``), the built module has ``0``
            name_in_model = rest
            if rest in known:
                out.append(rest)
                mapped[name] = rest
                continue
            name = name_in_model
        inside = [n for n in layers if n.startswith(name + ".")]
        if inside:
            found = inside[0] if first else inside[-1]
        elif name in modules:
            at = modules.index(name)
            if first:
                found = next((n for n in modules[at + 1 :] if n in known), None)
            else:
                found = next((n for n in reversed(modules[:at]) if n in known), None)
        if found is None:
            sample = ", ".join(f"`{n}`" for n in layers[:6]) + (", …" if len(layers) > 6 else "")
            if name in modules:
                side = "after" if first else "before"
                why = f"`{name}` is a module of the built model, but no parameterized module comes {side} it"
            else:
                why = (
                    f"the static layer `{name}` is not a module of the built model "
                    f"(its parameterized modules: {sample or 'none'})"
                )
            return tuple(names), mapped, why
        out.append(found)
        mapped[name] = found
    return tuple(out), mapped, None


def _weighted(layers: list[dict]) -> list[dict]:
    flagged = [e for e in layers if e.get("weighted")]
    if flagged or any("weighted" in e for e in layers):
        return flagged
    return list(layers)  # results without the flag: every parameterized layer


def model_class(layers: list[dict], t: dict | None = None) -> dict:
    """The hazard class the whole model measures, by the tests the static flow model applies
    (first/last weight-gradient ratio, first layer's norm, whole gradient, overflow, dead),
    seed by seed, the class most seeds show; with the numbers and the layer where the gradient,
    going backward from the last weighted layer, first leaves the healthy band."""
    t = {**THRESHOLDS, **(t or {})}
    w = _weighted(layers)
    if not w or not w[0].get("norms"):
        return {"hazard": "unknown", "test": None}
    seeds = min(len(e.get("norms") or ()) for e in w)
    per_seed = []
    for i in range(seeds):
        first, last = w[0]["norms"][i], w[-1]["norms"][i]
        # the whole gradient as the convention defines it: every weighted layer's ‖∇W‖ in quadrature
        every = [e["norms"][i] for e in w]
        finite = all(math.isfinite(v) for e in layers for v in (e.get("norms") or ())[i : i + 1])
        total = math.sqrt(sum(v * v for v in every)) if finite else float("inf")
        dead = len(w) > 1 and all(e["norms"][i] == 0.0 for e in w[:-1])
        ratio = first / last if last > 0 else (float("inf") if first > 0 else float("nan"))
        per_seed.append(
            {"ratio": ratio if len(w) > 1 else None, "first": first, "total": total, "finite": finite, "dead": dead}
        )
    hazard, test = classify_seeds(per_seed, t)
    out = {
        "hazard": str(hazard),
        "test": test,
        "first_layer": w[0]["name"],
        "last_layer": w[-1]["name"],
        "ratio": geomean([s["ratio"] for s in per_seed if s["ratio"] is not None]) if len(w) > 1 else float("nan"),
        "first": geomean([s["first"] for s in per_seed]),
        "total": geomean([s["total"] for s in per_seed]),
        "weighted_layers": len(w),
    }
    if hazard in (Hazard.VANISHING, Hazard.EXPLODING):
        last = geomean(w[-1]["norms"][:seeds])
        for e in reversed(w[:-1]):
            v = geomean(e["norms"][:seeds])
            r = v / last if last > 0 else float("nan")
            if (
                not math.isfinite(v)
                or v < t["vanishing-absolute"]
                or v > t["exploding-absolute"]
                or (r == r and (r < t["vanishing-ratio"] or r > t["exploding-ratio"]))
            ):
                out["leaves_band_at"] = e["name"]
                break
    return out


def describe_class(model: dict, t: dict) -> str:
    """``exploding: whole gradient norm 3.0e+05 (threshold 1.0e+03)``, from :func:`model_class`."""
    h, test = model["hazard"], model["test"]
    first, last = model.get("first_layer"), model.get("last_layer")
    if h == Hazard.NONE:
        ratio = f"‖∇{first}‖ / ‖∇{last}‖ = {_fmt(model['ratio'])}, " if first != last else ""
        return f"healthy: {ratio}‖∇{first}‖ = {_fmt(model['first'])}, whole gradient {_fmt(model['total'])}"
    if test == "overflow":
        what = "non-finite gradients"
    elif test == "dead":
        what = f"every weight gradient below `{last}` is exactly 0"
    elif test == "total":
        what = f"whole gradient norm {_fmt(model['total'])} (threshold {_fmt(t['exploding-total'])})"
    elif test == "first":
        limit = t["exploding-absolute"] if h == Hazard.EXPLODING else t["vanishing-absolute"]
        what = f"‖∇{first}‖ = {_fmt(model['first'])} (threshold {_fmt(limit)})"
    else:
        limit = t["exploding-ratio"] if h == Hazard.EXPLODING else t["vanishing-ratio"]
        what = f"‖∇{first}‖ / ‖∇{last}‖ = {_fmt(model['ratio'])} (threshold {_fmt(limit)})"
    where = f", leaving the healthy band at `{model['leaves_band_at']}`" if model.get("leaves_band_at") else ""
    return f"{h}: {what}{where}"


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
    # the whole gradient, seed by seed: every weighted layer's norm in quadrature
    totals = []
    for i in range(len(a)):
        sq = [entry["norms"][i] for entry in (_weighted(layers) or layers) if i < len(entry.get("norms") or ())]
        totals.append(math.sqrt(sum(v * v for v in sq)) if all(math.isfinite(v) for v in sq) else float("inf"))
    total = geomean(totals)
    # the tests the static flow model applies, seed by seed, the class most seeds show
    per_seed = [
        {
            "ratio": x / y if y > 0 else (float("inf") if x > 0 else float("nan")),
            "first": x,
            "total": tot,
            "finite": math.isfinite(x) and math.isfinite(y) and math.isfinite(tot),
        }
        for x, y, tot in zip(a, b, totals)
    ]
    measured_hazard, test = classify_seeds(per_seed, t)
    numbers = {
        "first_layer": first,
        "last_layer": last,
        "ratio": ratio,
        "first_grad_norm": absolute,
        "last_grad_norm": geomean(b),
        "total_grad_norm": total,
        "backward_gain": gain,
        "finite": finite,
        "measured_hazard": str(measured_hazard),
        "test": test,
    }
    if expect == Probe.VANISHING:
        limits = {"ratio": t["vanishing-ratio"], "absolute": t["vanishing-absolute"]}
    elif expect == Probe.EXPLODING:
        limits = {"ratio": t["exploding-ratio"], "absolute": t["exploding-absolute"], "total": t["exploding-total"]}
    else:  # degradation: the stack's gradient leaving the band either way
        limits = {
            "vanishing-ratio": t["vanishing-ratio"],
            "exploding-ratio": t["exploding-ratio"],
            "vanishing-absolute": t["vanishing-absolute"],
            "exploding-absolute": t["exploding-absolute"],
        }
    numbers["thresholds"] = limits
    numbers["decided_by"] = test or "healthy band"
    if ratio != ratio and finite:
        numbers["decided_by"] = None
        return INCONCLUSIVE, numbers, f"inconclusive: ‖∇{first}‖ and ‖∇{last}‖ are both 0"
    if expect == Probe.DEGRADATION:
        degraded = measured_hazard in (Hazard.VANISHING, Hazard.EXPLODING)
        verdict = CONFIRMED if degraded else REFUTED
        text = (
            f"across the stack `{first}` … `{last}`: ‖∇{first}‖ / ‖∇{last}‖ = {_fmt(ratio)} "
            f"(band {_fmt(t['vanishing-ratio'])} … {_fmt(t['exploding-ratio'])}), ‖∇{first}‖ = {_fmt(absolute)}, "
            f"the gradient at `{first}`'s output {_fmt(gain)} of that at `{last}`'s (per unit)"
        )
        text += (
            f": the gradient is measurably {measured_hazard} across it (its {test} test)"
            if degraded
            else ": the gradient crosses it within the healthy band at initialization"
        )
        text += " (the slower training of deep plain stacks stays the static caveat: one backward pass cannot show it)"
        return verdict, numbers, text
    verdict = CONFIRMED if measured_hazard == expect else REFUTED
    text = (
        f"‖∇{first}‖ / ‖∇{last}‖ = {_fmt(ratio)} (threshold {_fmt(limits['ratio'])}), "
        f"‖∇{first}‖ = {_fmt(absolute)} (threshold {_fmt(limits['absolute'])})"
    )
    if expect == Probe.EXPLODING:
        text += f", whole gradient {_fmt(total)} (threshold {_fmt(limits['total'])})"
    if not finite:
        text += ", non-finite gradients"
    if verdict == CONFIRMED:
        text += f": {expect} by its {test} test"
    else:
        text += f"; refuted as {expect}: the layers measure {measured_hazard}" + (
            f" by the {test} test" if test else " (every test within the healthy band)"
        )
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
    numbers = {
        "layers": list(names),
        "weight_rows_spread": spreads,
        "symmetric_layers": symmetric,
        "upstream_blocked": blocked,
        "steps": s0["steps"],
        "thresholds": {"symmetry": limit},
    }
    parts = []
    if symmetric:
        parts.append(
            f"{len(symmetric)} of {len(names)} layers keep identical rows after {s0['steps']} SGD steps "
            f"(row spread ≤ {_fmt(limit)})"
        )
    else:
        worst = min((v for v in spreads.values() if v == v), default=float("nan"))
        parts.append(
            f"rows differ after {s0['steps']} SGD steps (smallest row spread {_fmt(worst)}, threshold {_fmt(limit)})"
        )
    if blocked:
        parts.append(f"the gradient to the {s0['upstream']} layer(s) before is exactly 0")
    if starved and not symmetric:
        cos = {n: min(s.get("weight_rows_cosine", {}).get(n, float("nan")) for s in seeds) for n in names}
        alike = [n for n, v in cos.items() if v == v and v >= t["starved-cosine"]]
        numbers["weight_rows_cosine"] = cos
        numbers["thresholds"]["starved-cosine"] = t["starved-cosine"]
        low = min((v for v in cos.values() if v == v), default=float("nan"))
        parts.append(f"smallest cosine of a row to the mean row {low:.3f} (threshold {t['starved-cosine']:g})")
        numbers["decided_by"] = "starved-cosine" if alike else "upstream-blocked" if blocked else "starved-cosine"
        return (CONFIRMED if alike or blocked else REFUTED), numbers, ", ".join(parts)
    verdict = CONFIRMED if symmetric or blocked else REFUTED
    numbers["decided_by"] = "symmetry" if symmetric or not blocked else "upstream-blocked"
    return verdict, numbers, ", ".join(parts)


def _through_time(names, raw, t):
    seeds = raw.get("seeds") or []
    if not seeds:
        return INCONCLUSIVE, {}, "inconclusive: nothing was measured"
    ratios = [s["first_step"] / s["last_step"] if s["last_step"] > 0 else float("nan") for s in seeds]
    ratio = geomean(ratios)
    limit = t["recurrent-vanishing"]
    length = seeds[0]["length"]
    numbers = {
        "layer": names[0] if names else None,
        "ratio": ratio,
        "sequence_length": length,
        "thresholds": {"ratio": limit},
        "decided_by": "through-time ratio",
    }
    if ratio != ratio:
        return INCONCLUSIVE, numbers, "inconclusive: no gradient reached the last time step"
    text = (
        f"over {length} steps, ‖∂L/∂x_1‖ / ‖∂L/∂x_{length}‖ at `{names[0] if names else '?'}` = "
        f"{_fmt(ratio)} (threshold {_fmt(limit)})"
    )
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
    numbers = {
        "max_grad_norm": largest,
        "finite": finite,
        "steps": s0["steps"],
        "sequence_length": s0["length"],
        "clip": s0.get("clip"),
        "thresholds": {"max_grad_norm": limit},
        "decided_by": "overflow" if not finite else "max-grad-norm",
        # per training step, over the seeds (geometric mean): the norm the backward pass gives
        # and the one that reaches the update (after the loop's clipping)
        "per_step": _per_step(seeds),
    }
    raw_all = [n for s in seeds for n in s.get("raw_norms") or ()]
    if raw_all:
        numbers["max_raw_grad_norm"] = max(raw_all) if all(math.isfinite(n) for n in raw_all) else float("inf")
    how = f"{s0['steps']} BPTT steps of length {s0['length']}"
    if s0.get("clip"):
        how += f", clipped by {s0['clip'][0]} at {s0['clip'][1]:g} as the loop does"
    text = f"{how}: max ‖∇‖ = {_fmt(largest)} (threshold {_fmt(limit)})"
    if not finite:
        text += ", non-finite gradients"
    return (CONFIRMED if not finite or largest > limit else REFUTED), numbers, text


def _per_step(seeds) -> list[dict]:
    steps = max((len(s["norms"]) for s in seeds), default=0)
    out = []
    for k in range(steps):
        clipped = [s["norms"][k] for s in seeds if k < len(s["norms"])]
        raw = [s["raw_norms"][k] for s in seeds if k < len(s.get("raw_norms") or ())]
        out.append({"step": k + 1, "raw": geomean(raw) if raw else geomean(clipped), "clipped": geomean(clipped)})
    return out


def _dead(names, layers):
    """Born dead: every weighted layer before the last gets an exactly-zero gradient, in most seeds."""
    if not layers:
        return INCONCLUSIVE, {}, "inconclusive: no parameterized module was measured"
    weighted = _weighted(layers) or layers
    below = weighted[:-1] if len(weighted) > 1 else weighted
    seeds = len(below[0]["norms"])
    dead_seeds = sum(1 for i in range(seeds) if all(entry["norms"][i] == 0.0 for entry in below))
    numbers = {"dead_seeds": dead_seeds, "seeds": seeds, "layers": len(below), "decided_by": "dead"}
    text = (
        f"every weight gradient below `{weighted[-1]['name']}` is exactly 0 in {dead_seeds} of {seeds} seeds "
        f"({len(below)} weighted layers)"
    )
    return (CONFIRMED if dead_seeds * 2 > seeds else REFUTED), numbers, text
